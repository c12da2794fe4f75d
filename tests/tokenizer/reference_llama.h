// The pinned reference libllama, loaded vocabulary-only, as a tokenizer to compare against.
#pragma once

#include <llama.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace bitnet::tokenizer::testing {

class ReferenceVocab {
 public:
  // `pre_override`: value forced for tokenizer.ggml.pre through libllama's kv overrides.
  explicit ReferenceVocab(const std::string& path, const std::string& pre_override = "") {
    static const bool initialised = [] {
      llama_log_set([](ggml_log_level, const char*, void*) {}, nullptr);
      llama_backend_init();
      return true;
    }();
    (void)initialised;
    llama_model_params p = llama_model_default_params();
    p.vocab_only = true;
    llama_model_kv_override overrides[2] = {};
    if (!pre_override.empty()) {
      overrides[0].tag = LLAMA_KV_OVERRIDE_TYPE_STR;
      snprintf(overrides[0].key, sizeof(overrides[0].key), "%s", "tokenizer.ggml.pre");
      snprintf(overrides[0].val_str, sizeof(overrides[0].val_str), "%s", pre_override.c_str());
      p.kv_overrides = overrides;
    }
    model_ = llama_model_load_from_file(path.c_str(), p);
    if (model_ == nullptr) throw std::runtime_error("libllama cannot load " + path);
    vocab_ = llama_model_get_vocab(model_);
  }
  ~ReferenceVocab() { llama_model_free(model_); }
  ReferenceVocab(const ReferenceVocab&) = delete;
  ReferenceVocab& operator=(const ReferenceVocab&) = delete;

  std::vector<llama_token> tokenize(const std::string& text, bool add_special,
                                    bool parse_special) const {
    std::vector<llama_token> ids(text.size() + 8);
    int n = llama_tokenize(vocab_, text.data(), static_cast<int32_t>(text.size()), ids.data(),
                           static_cast<int32_t>(ids.size()), add_special, parse_special);
    if (n < 0) {
      ids.resize(-n);
      n = llama_tokenize(vocab_, text.data(), static_cast<int32_t>(text.size()), ids.data(),
                         static_cast<int32_t>(ids.size()), add_special, parse_special);
    }
    ids.resize(n);
    return ids;
  }

  std::string detokenize(const std::vector<llama_token>& ids, bool remove_special,
                         bool unparse_special) const {
    std::string out(ids.size() * 8 + 16, '\0');
    int n = llama_detokenize(vocab_, ids.data(), static_cast<int32_t>(ids.size()), out.data(),
                             static_cast<int32_t>(out.size()), remove_special, unparse_special);
    if (n < 0) {
      out.resize(-n);
      n = llama_detokenize(vocab_, ids.data(), static_cast<int32_t>(ids.size()), out.data(),
                           static_cast<int32_t>(out.size()), remove_special, unparse_special);
    }
    out.resize(n);
    return out;
  }

  std::string piece(llama_token id, bool special) const {
    char buf[256];
    int n = llama_token_to_piece(vocab_, id, buf, sizeof(buf), 0, special);
    if (n < 0) return "<too long>";
    return std::string(buf, n);
  }

  int32_t n_tokens() const { return llama_vocab_n_tokens(vocab_); }
  const llama_vocab* vocab() const { return vocab_; }

 private:
  llama_model* model_ = nullptr;
  const llama_vocab* vocab_ = nullptr;
};

}  // namespace bitnet::tokenizer::testing
