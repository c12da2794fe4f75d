// See llama_api_compat.h. Every #if here tests a definition from llama_api_checks.cmake.
//
// The "new" branches are exercised by the pinned upstream tree; the "old" branches (the API of
// bitnet.cpp's llama.cpp fork and upstream trees of 2024) by the older-API pin, llama.cpp b3995
// (.deps/reference-oldapi, helper bitnet-reference-oldapi, tested in tests/crossval).
#include "reference/llama_api_compat.h"

#include <dlfcn.h>
#include <link.h>

#include <cstring>
#include <filesystem>

#include "ggml-backend.h"
#include "ggml.h"

namespace bitnet::reference::compat {

const char* api_flavour() {
#if defined(BITNET_LLAMA_NEW_API)
  return "new";
#else
  return "old";
#endif
}

llama_model* load_model(const std::string& path, const llama_model_params& params) {
#if defined(BITNET_LLAMA_HAS_MODEL_LOAD_FROM_FILE)
  return llama_model_load_from_file(path.c_str(), params);
#else
  return llama_load_model_from_file(path.c_str(), params);
#endif
}

void free_model(llama_model* model) {
  if (model == nullptr) return;
#if defined(BITNET_LLAMA_HAS_MODEL_LOAD_FROM_FILE)
  llama_model_free(model);
#else
  llama_free_model(model);
#endif
}

llama_context* new_context(llama_model* model, const llama_context_params& params) {
#if defined(BITNET_LLAMA_HAS_MODEL_LOAD_FROM_FILE)
  return llama_init_from_model(model, params);
#else
  return llama_new_context_with_model(model, params);
#endif
}

void set_flash_attn(llama_context_params& params, bool enabled) {
#if defined(BITNET_LLAMA_HAS_FLASH_ATTN_TYPE)
  params.flash_attn_type = enabled ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
#else
  params.flash_attn = enabled;
#endif
}

int32_t n_vocab(const llama_model* model) {
#if defined(BITNET_LLAMA_HAS_VOCAB_API)
  return llama_vocab_n_tokens(llama_model_get_vocab(model));
#else
  return llama_n_vocab(model);
#endif
}

int32_t tokenize(const llama_model* model, const std::string& text, int32_t* tokens, int32_t n_max,
                 bool add_special, bool parse_special) {
#if defined(BITNET_LLAMA_HAS_VOCAB_API)
  return llama_tokenize(llama_model_get_vocab(model), text.data(),
                        static_cast<int32_t>(text.size()), tokens, n_max, add_special,
                        parse_special);
#else
  return llama_tokenize(model, text.data(), static_cast<int32_t>(text.size()), tokens, n_max,
                        add_special, parse_special);
#endif
}

void clear_kv(llama_context* ctx) {
#if defined(BITNET_LLAMA_HAS_MEMORY_API)
  llama_memory_clear(llama_get_memory(ctx), /*data=*/true);
#elif defined(BITNET_LLAMA_HAS_KV_SELF_CLEAR)
  llama_kv_self_clear(ctx);
#else
  llama_kv_cache_clear(ctx);
#endif
}

std::string version() {
  std::string v;
#if defined(BITNET_LLAMA_HAS_VERSION)
  v = std::string("llama.cpp ") + llama_version();
#else
  v = "llama.cpp (version not exposed by this tree)";
#endif
#if defined(BITNET_GGML_HAS_VERSION)
  v += std::string(", ggml ") + ggml_version() + " (commit " + ggml_commit() + ")";
#endif
  return v;
}

LogLevel log_level(ggml_log_level level) {
  switch (level) {
    case GGML_LOG_LEVEL_DEBUG:
      return LogLevel::kDebug;
    case GGML_LOG_LEVEL_INFO:
      return LogLevel::kInfo;
    case GGML_LOG_LEVEL_WARN:
      return LogLevel::kWarn;
    case GGML_LOG_LEVEL_ERROR:
      return LogLevel::kError;
#if defined(BITNET_GGML_HAS_LOG_CONT)
    case GGML_LOG_LEVEL_CONT:
      return LogLevel::kCont;
#endif
    default:
      return LogLevel::kOther;
  }
}

#if defined(BITNET_GGML_HAS_BACKEND_REGISTRY)
namespace {

std::string dir_of_symbol(const void* symbol) {
  Dl_info info{};
  if (dladdr(symbol, &info) == 0 || info.dli_fname == nullptr) return "";
  return std::filesystem::path(info.dli_fname).parent_path().string();
}

// The path of the loaded shared object whose file name contains `needle`, or "".
std::string loaded_object_containing(const char* needle) {
  struct Search {
    const char* needle;
    std::string found;
  } search{needle, ""};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) -> int {
        auto* s = static_cast<Search*>(data);
        if (info->dlpi_name != nullptr && std::strstr(info->dlpi_name, s->needle) != nullptr) {
          s->found = info->dlpi_name;
          return 1;
        }
        return 0;
      },
      &search);
  return search.found;
}

}  // namespace
#endif  // BITNET_GGML_HAS_BACKEND_REGISTRY

bool load_cpu_backend(const std::string& dir, const std::string& variant, CpuBackend* out,
                      std::string* error) {
#if defined(BITNET_GGML_HAS_BACKEND_REGISTRY)
  out->search_dir =
      dir.empty() ? dir_of_symbol(reinterpret_cast<const void*>(&ggml_backend_load_all_from_path))
                  : dir;
  if (ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU) == nullptr) {
    if (variant.empty()) {
      ggml_backend_load_all_from_path(out->search_dir.c_str());
    } else {
      const std::string path =
          (std::filesystem::path(out->search_dir) / ("libggml-cpu-" + variant + ".so")).string();
      if (ggml_backend_load(path.c_str()) == nullptr) {
        *error = "could not load the CPU backend " + path +
                 " (missing, or it needs instructions this CPU lacks)";
        return false;
      }
    }
  }
  ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
  if (cpu == nullptr) {
    *error = "no CPU backend: no usable libggml-cpu-*.so in '" + out->search_dir + "'";
    return false;
  }
  out->plugin_path = loaded_object_containing("libggml-cpu");
  if (!out->plugin_path.empty()) {
    std::string stem = std::filesystem::path(out->plugin_path).stem().string();  // libggml-cpu-x
    const std::string prefix = "libggml-cpu-";
    out->variant = stem.rfind(prefix, 0) == 0 ? stem.substr(prefix.size()) : stem;
  } else {
    out->variant = "builtin";  // statically part of libggml
  }
  ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(cpu);
  out->reg_name = ggml_backend_reg_name(reg);
  out->device = std::string(ggml_backend_dev_name(cpu)) + ": " + ggml_backend_dev_description(cpu);
  out->features.clear();
  if (auto get_features = reinterpret_cast<ggml_backend_get_features_t>(
          ggml_backend_reg_get_proc_address(reg, "ggml_backend_get_features"))) {
    for (const ggml_backend_feature* f = get_features(reg); f != nullptr && f->name != nullptr;
         ++f) {
      if (!out->features.empty()) out->features += ' ';
      out->features += f->name;
      if (f->value != nullptr && std::strcmp(f->value, "1") != 0) {
        out->features += std::string("=") + f->value;
      }
    }
  }
  out->devices.clear();
  for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
    ggml_backend_dev_t d = ggml_backend_dev_get(i);
    out->devices.push_back(std::string(ggml_backend_dev_name(d)) + ": " +
                           ggml_backend_dev_description(d));
  }
  return true;
#else
  // Older trees link the CPU backend into libggml itself: nothing to load or choose.
  (void)dir;
  if (!variant.empty()) {
    *error = "this llama.cpp tree has no CPU backend plugins; cpu_variant '" + variant +
             "' cannot be chosen";
    return false;
  }
  out->search_dir.clear();
  out->plugin_path.clear();
  out->variant = "builtin";
  out->reg_name = "CPU";
  out->device = "CPU";
  out->features.clear();
  out->devices = {"CPU"};
  return true;
#endif
}

}  // namespace bitnet::reference::compat
