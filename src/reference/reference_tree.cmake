# Building the reference helper (bitnet-reference, see reference_main.cpp) against a llama.cpp
# tree: the pinned upstream one (.deps/reference), the older-API pin (.deps/reference-oldapi),
# or any tree a user names with `bitnet crossval --reference-dir D` (built by
# src/reference/standalone/CMakeLists.txt).
#
# Tree layouts searched (first match wins): headers in include/ (llama.h, ggml.h), ggml/include/
# or 3rdparty/llama.cpp/{include,ggml/include}/ (bitnet.cpp); shared libraries libllama.so,
# libggml.so and, when present, libggml-base.so in lib/, build/bin/, build/src/,
# build/ggml/src/ or build/3rdparty/llama.cpp/{src,ggml/src}/. Build such a tree with
# -DBUILD_SHARED_LIBS=ON.
include(${CMAKE_CURRENT_LIST_DIR}/llama_api_checks.cmake)

# bitnet_find_llama_tree(<tree> <out include dirs> <out libraries> <out library dirs>)
function(bitnet_find_llama_tree tree out_inc out_libs out_libdirs)
  set(inc_hints ${tree}/include ${tree}/ggml/include
      ${tree}/3rdparty/llama.cpp/include ${tree}/3rdparty/llama.cpp/ggml/include)
  set(lib_hints ${tree}/lib ${tree}/build/bin ${tree}/build/src ${tree}/build/ggml/src
      ${tree}/build/lib ${tree}/build/3rdparty/llama.cpp/src
      ${tree}/build/3rdparty/llama.cpp/ggml/src ${tree}/build/3rdparty/llama.cpp/bin)
  find_path(llama_inc llama.h PATHS ${inc_hints} NO_DEFAULT_PATH NO_CACHE)
  find_path(ggml_inc ggml.h PATHS ${inc_hints} NO_DEFAULT_PATH NO_CACHE)
  find_library(llama_lib NAMES llama PATHS ${lib_hints} NO_DEFAULT_PATH NO_CACHE)
  find_library(ggml_lib NAMES ggml PATHS ${lib_hints} NO_DEFAULT_PATH NO_CACHE)
  find_library(ggml_base_lib NAMES ggml-base PATHS ${lib_hints} NO_DEFAULT_PATH NO_CACHE)
  if(NOT llama_inc OR NOT ggml_inc OR NOT llama_lib OR NOT ggml_lib)
    message(FATAL_ERROR "bitnet: ${tree} is not a usable llama.cpp tree (need llama.h, ggml.h, "
                        "libllama.so and libggml.so; found: '${llama_inc}' '${ggml_inc}' "
                        "'${llama_lib}' '${ggml_lib}')")
  endif()
  set(libs ${llama_lib} ${ggml_lib})
  if(ggml_base_lib)
    list(APPEND libs ${ggml_base_lib})
  endif()
  set(libdirs "")
  foreach(l IN LISTS libs)
    get_filename_component(d "${l}" DIRECTORY)
    list(APPEND libdirs "${d}")
  endforeach()
  list(REMOVE_DUPLICATES libdirs)
  set(inc ${llama_inc} ${ggml_inc})
  list(REMOVE_DUPLICATES inc)
  set(${out_inc} "${inc}" PARENT_SCOPE)
  set(${out_libs} "${libs}" PARENT_SCOPE)
  set(${out_libdirs} "${libdirs}" PARENT_SCOPE)
endfunction()

# bitnet_add_reference_helper(<executable name> <tree>): the helper compiled against <tree>'s
# headers (API flavour probed) and linked to its libraries (found at run time through the rpath).
# Needs the targets bitnet_trace and bitnet_crossval_names.
function(bitnet_add_reference_helper exe tree)
  bitnet_find_llama_tree("${tree}" inc libs libdirs)
  bitnet_llama_api_checks("${inc}" defs)
  set(dir ${CMAKE_CURRENT_FUNCTION_LIST_DIR})
  add_executable(${exe} ${dir}/reference_main.cpp ${dir}/llama_reference.cpp ${dir}/llama_api_compat.cpp)
  target_include_directories(${exe} SYSTEM PRIVATE ${inc})
  target_link_libraries(${exe} PRIVATE bitnet_crossval_names bitnet_trace bitnet_core
                        nlohmann_json::nlohmann_json ${libs} ${CMAKE_DL_LIBS})
  target_compile_definitions(${exe} PRIVATE ${defs} BITNET_REFERENCE_TREE="${tree}")
  foreach(d IN LISTS libdirs)
    target_link_options(${exe} PRIVATE "LINKER:-rpath,${d}")
  endforeach()
  if(COMMAND bitnet_warnings)
    bitnet_warnings(${exe})
  endif()
endfunction()
