# Strict warnings for the project's own targets (never for third-party sources).
function(bitnet_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror -Wshadow -Wno-missing-field-initializers)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    # GCC 12 reports -Wrestrict / -Wstringop-overflow false positives inside libstdc++'s
    # std::string and std::vector at -O3 (GCC bugs 105329, 106199); keep them as warnings there.
    target_compile_options(${target} PRIVATE -Wno-restrict -Wno-error=stringop-overflow)
  endif()
endfunction()
