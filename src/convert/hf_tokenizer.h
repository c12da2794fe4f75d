// A checkpoint's tokenizer (tokenizer.json + tokenizer_config.json) <-> GGUF tokenizer.* keys.
//
// Reading: the tokenizer library parses tokenizer.json (byte-level BPE, or a Llama 2 style
// SentencePiece vocabulary whose scores it derives from the merge ranks); the keys written are
// those llama.cpp's converter writes: model, pre (byte-level BPE: the name of the recognised
// regex, or --pre), tokens, token_type, merges or scores, BOS/EOS/UNK ids (BOS and EOS from
// generation_config.json where it names them), add_bos_token /
// add_eos_token where the checkpoint says, chat_template. Ids the model has beyond the
// tokenizer's (config vocab_size) are padded with "[PAD{id}]" tokens of type UNUSED, as
// llama.cpp's converter pads them.
// Writing (synthetic checkpoints): byte-level BPE vocabularies only; the regex of the file's
// pre-tokenizer name (Llama 3's when the file names none, as the 2B4T checkpoint's
// tokenizer.json holds it while its GGUF has no name), control tokens as special added_tokens.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "gguf/value.h"

namespace bitnet::convert {

struct HfTokenizerOptions {
  std::optional<std::string> pre;  // tokenizer.ggml.pre to write instead of the recognised one
  uint32_t pad_to = 0;             // config vocab_size (0: the tokenizer's own count)
  // Write no tokenizer.ggml.pre (unless `pre` is set): bitnet-b1.58, whose official GGUF has
  // none (the reference engines then pre-tokenize with their "default" regexes).
  bool omit_pre = false;
};

Result<std::vector<gguf::KeyValue>> read_hf_tokenizer(const std::string& dir,
                                                      const HfTokenizerOptions& o);

// Writes dir/tokenizer.json and dir/tokenizer_config.json from GGUF tokenizer keys.
Status write_hf_tokenizer(const std::vector<gguf::KeyValue>& keys, const std::string& dir);

}  // namespace bitnet::convert
