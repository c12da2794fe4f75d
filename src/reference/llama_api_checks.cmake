# Feature probes for the llama.cpp C API the reference adapter compiles against.
#
# llama.cpp renamed much of its C API during 2024-2025 (llama_load_model_from_file ->
# llama_model_load_from_file, llama_n_vocab(model) -> llama_vocab_n_tokens(vocab),
# llama_kv_cache_clear -> llama_kv_self_clear -> llama_memory_clear, bool flash_attn ->
# flash_attn_type, run-time loaded CPU backend plugins). bitnet.cpp's fork predates most of it.
# Each probe compiles (never links) a few lines against the chosen headers and yields a
# BITNET_LLAMA_* / BITNET_GGML_* definition; only llama_api_compat.cpp looks at them.
#
# The cache variables are keyed by the MD5 of llama.h and ggml.h, so pointing
# BITNET_REFERENCE_DIR at another tree re-runs the probes instead of reusing stale answers.
include(CheckCXXSourceCompiles)
include(CMakePushCheckState)

# bitnet_llama_api_checks(<include dir(s)> <out var>): sets <out var> to a list of definitions.
# The include dirs (a list) must hold llama.h and ggml.h between them.
function(bitnet_llama_api_checks include_dir out_var)
  set(llama_h "")
  set(ggml_h "")
  foreach(d IN LISTS include_dir)
    if(NOT llama_h AND EXISTS "${d}/llama.h")
      set(llama_h "${d}/llama.h")
    endif()
    if(NOT ggml_h AND EXISTS "${d}/ggml.h")
      set(ggml_h "${d}/ggml.h")
    endif()
  endforeach()
  if(NOT llama_h OR NOT ggml_h)
    message(FATAL_ERROR "bitnet: llama.h / ggml.h not found in ${include_dir}")
  endif()
  file(MD5 "${llama_h}" llama_md5)
  file(MD5 "${ggml_h}" ggml_md5)
  string(MD5 tag "${llama_md5}${ggml_md5}")
  string(SUBSTRING "${tag}" 0 12 tag)

  cmake_push_check_state(RESET)
  set(CMAKE_REQUIRED_INCLUDES "${include_dir}")
  set(CMAKE_REQUIRED_QUIET ON)
  # Compile only: the probes name functions without linking the libraries.
  set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

  set(defs "")
  set(found "")
  set(missing "")
  macro(bitnet_probe macro_name code)
    check_cxx_source_compiles("${code}" BITNET_PROBE_${macro_name}_${tag})
    if(BITNET_PROBE_${macro_name}_${tag})
      list(APPEND defs "${macro_name}=1")
      list(APPEND found "${macro_name}")
    else()
      list(APPEND missing "${macro_name}")
    endif()
  endmacro()

  # llama_model_load_from_file / llama_init_from_model / llama_model_free (late 2024+).
  bitnet_probe(BITNET_LLAMA_HAS_MODEL_LOAD_FROM_FILE [=[
#include <llama.h>
llama_model * f(const char * p) { return llama_model_load_from_file(p, llama_model_default_params()); }
llama_context * g(llama_model * m) { return llama_init_from_model(m, llama_context_default_params()); }
void h(llama_model * m) { llama_model_free(m); }
]=])
  # llama_vocab: llama_model_get_vocab, llama_vocab_n_tokens, llama_tokenize(vocab, ...) (2025+).
  bitnet_probe(BITNET_LLAMA_HAS_VOCAB_API [=[
#include <llama.h>
int f(const llama_model * m, const char * t, llama_token * o) {
  const llama_vocab * v = llama_model_get_vocab(m);
  return llama_vocab_n_tokens(v) + llama_tokenize(v, t, 1, o, 1, true, false);
}
]=])
  # llama_memory_clear(llama_get_memory(ctx), data) (mid 2025+).
  bitnet_probe(BITNET_LLAMA_HAS_MEMORY_API [=[
#include <llama.h>
void f(llama_context * c) { llama_memory_clear(llama_get_memory(c), true); }
]=])
  # llama_kv_self_clear(ctx) (early 2025, between llama_kv_cache_clear and llama_memory_clear).
  bitnet_probe(BITNET_LLAMA_HAS_KV_SELF_CLEAR [=[
#include <llama.h>
void f(llama_context * c) { llama_kv_self_clear(c); }
]=])
  # llama_context_params.flash_attn_type (mid 2025+; before: bool flash_attn).
  bitnet_probe(BITNET_LLAMA_HAS_FLASH_ATTN_TYPE [=[
#include <llama.h>
void f(llama_context_params & p) { p.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED; }
]=])
  bitnet_probe(BITNET_LLAMA_HAS_VERSION [=[
#include <llama.h>
const char * f() { return llama_version(); }
]=])
  # Run-time loaded backend plugins and the device registry (libggml-cpu-<variant>.so).
  bitnet_probe(BITNET_GGML_HAS_BACKEND_REGISTRY [=[
#include <ggml-backend.h>
void f(const char * d) {
  ggml_backend_load_all_from_path(d);
  ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
  (void) ggml_backend_reg_name(ggml_backend_dev_backend_reg(dev));
  (void) ggml_backend_dev_description(dev);
}
]=])
  bitnet_probe(BITNET_GGML_HAS_VERSION [=[
#include <ggml.h>
const char * f() { return ggml_commit(); }
const char * g() { return ggml_version(); }
]=])
  # GGML_LOG_LEVEL_CONT (continuation of the previous log line), late 2024+.
  bitnet_probe(BITNET_GGML_HAS_LOG_CONT [=[
#include <ggml.h>
int f() { return (int) GGML_LOG_LEVEL_CONT; }
]=])
  cmake_pop_check_state()

  if("BITNET_LLAMA_HAS_MODEL_LOAD_FROM_FILE" IN_LIST found AND "BITNET_LLAMA_HAS_VOCAB_API" IN_LIST found)
    list(APPEND defs "BITNET_LLAMA_NEW_API=1")
    set(api "new (llama_model_load_from_file + llama_vocab)")
  else()
    set(api "old (llama_load_model_from_file + llama_n_vocab(model))")
  endif()
  list(JOIN found " " found_str)
  list(JOIN missing " " missing_str)
  message(STATUS "bitnet: reference llama.cpp C API: ${api}; has: ${found_str}; lacks: ${missing_str}")
  set(${out_var} "${defs}" PARENT_SCOPE)
endfunction()
