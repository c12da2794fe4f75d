# Everything here comes from Debian packages installed by scripts/setup.sh, except the reference
# llama.cpp (prebuilt shared libraries + headers from the pinned npm packages, under .deps/).
find_package(Threads REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(CLI11 REQUIRED)
# libcrypto (libssl-dev): Ed25519 signatures of crossval receipts (src/crossval/ed25519.cpp).
find_package(OpenSSL 3 REQUIRED COMPONENTS Crypto)
if(BITNET_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(BITNET_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()

# BLAKE3: Debian's librust-blake3-dev ships the official C implementation; compile it here
# (portable + SSE/AVX2/AVX-512 assembly, dispatched at run time by blake3_dispatch.c).
file(GLOB BLAKE3_DIRS LIST_DIRECTORIES true /usr/share/cargo/registry/blake3-*/c)
list(SORT BLAKE3_DIRS)
list(POP_BACK BLAKE3_DIRS BLAKE3_C_DIR)
if(NOT EXISTS "${BLAKE3_C_DIR}/blake3.h")
  message(FATAL_ERROR "BLAKE3 C sources not found (apt-get install librust-blake3-dev; run scripts/setup.sh)")
endif()
add_library(blake3 STATIC
  ${BLAKE3_C_DIR}/blake3.c
  ${BLAKE3_C_DIR}/blake3_dispatch.c
  ${BLAKE3_C_DIR}/blake3_portable.c)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64")
  target_sources(blake3 PRIVATE
    ${BLAKE3_C_DIR}/blake3_sse2_x86-64_unix.S
    ${BLAKE3_C_DIR}/blake3_sse41_x86-64_unix.S
    ${BLAKE3_C_DIR}/blake3_avx2_x86-64_unix.S
    ${BLAKE3_C_DIR}/blake3_avx512_x86-64_unix.S)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  target_sources(blake3 PRIVATE ${BLAKE3_C_DIR}/blake3_neon.c)  # blake3_impl.h enables it there
endif()
target_include_directories(blake3 SYSTEM PUBLIC ${BLAKE3_C_DIR})
set_target_properties(blake3 PROPERTIES POSITION_INDEPENDENT_CODE ON)

# Reference llama.cpp (upstream, pinned). Imported as shared libraries; only the reference
# adapter and the tests link it, never the engine itself.
# Its libraries are x86-64 builds: a cross build for another CPU goes without (the parity tests
# then run in the native build only).
set(BITNET_HAVE_REFERENCE OFF)
if(CMAKE_CROSSCOMPILING)
  message(STATUS "bitnet: cross build for ${CMAKE_SYSTEM_PROCESSOR}: no reference llama.cpp")
elseif(EXISTS "${BITNET_REFERENCE_DIR}/include/llama.h" AND EXISTS "${BITNET_REFERENCE_DIR}/lib/libllama.so")
  set(BITNET_HAVE_REFERENCE ON)
  add_library(ref_ggml_base SHARED IMPORTED)
  set_target_properties(ref_ggml_base PROPERTIES
    IMPORTED_LOCATION "${BITNET_REFERENCE_DIR}/lib/libggml-base.so"
    INTERFACE_INCLUDE_DIRECTORIES "${BITNET_REFERENCE_DIR}/include")
  add_library(ref_ggml SHARED IMPORTED)
  set_target_properties(ref_ggml PROPERTIES
    IMPORTED_LOCATION "${BITNET_REFERENCE_DIR}/lib/libggml.so"
    INTERFACE_LINK_LIBRARIES ref_ggml_base)
  add_library(ref_llama SHARED IMPORTED)
  set_target_properties(ref_llama PROPERTIES
    IMPORTED_LOCATION "${BITNET_REFERENCE_DIR}/lib/libllama.so"
    INTERFACE_LINK_LIBRARIES "ref_ggml;ref_ggml_base")
  message(STATUS "bitnet: reference llama.cpp at ${BITNET_REFERENCE_DIR}")
else()
  message(WARNING "bitnet: reference llama.cpp not found at ${BITNET_REFERENCE_DIR}; run scripts/setup.sh. "
                  "Parity tests are not built.")
endif()
