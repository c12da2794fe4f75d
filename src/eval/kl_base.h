// The baseline file of `bitnet perplexity --kl-divergence-base`: what a later run of another
// model (or quantization) over the same text needs to compare its predictions with this one's.
//
// Layout (little-endian, no padding):
//   header, 48 bytes:
//     char[8]  magic "BNKLBASE"
//     uint32   version (1)
//     uint32   n_vocab            logits per row
//     uint32   n_ctx              chunk length in tokens
//     uint32   n_chunks
//     uint64   n_tokens           n_chunks * n_ctx: the tokens the chunks hold
//     uint64   tokens_hash        FNV-1a 64 of those token ids (int32 little-endian), as
//                                 tokenized (before the first of each chunk becomes BOS)
//     uint32   rows_per_chunk     n_ctx - 1 - n_ctx/2: the scored positions of a chunk
//     uint32   reserved (0)
//   then n_chunks * rows_per_chunk rows, in chunk and position order, each 20 + 2 * n_vocab
//   bytes:
//     int32    argmax             the most likely token (first index of the largest logit)
//     float64  nll                -log p of the text's next token, exact (llama.cpp's arithmetic)
//     float32  scale, min_log_prob
//     uint16   codes[n_vocab]     log p[i] ~= min_log_prob + scale * codes[i] for the tokens
//                                 within 16 nats of the most likely; 0 for the rest
//
// The codes are llama-perplexity's own encoding of a row (2 bytes a token instead of 4; the
// rounding error of a log-probability is at most scale/2 <= 1.3e-4 nats). The exact argmax and
// nll beside them keep top-1 agreement, Delta-p and the base's perplexity free of that rounding.
// A file from another text or vocabulary has another hash or n_vocab and is refused.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"
#include "eval/scoring.h"

namespace bitnet::eval {

struct KlBaseHeader {
  uint32_t n_vocab = 0;
  uint32_t n_ctx = 0;
  uint32_t n_chunks = 0;
  uint64_t n_tokens = 0;
  uint64_t tokens_hash = 0;
  uint32_t rows_per_chunk = 0;
};

struct KlBaseRow {
  int32_t argmax = 0;
  double nll = 0;
  QuantizedRow log_probs;
};

// FNV-1a 64 of the ids' little-endian bytes.
uint64_t hash_tokens(std::span<const int32_t> tokens);

class KlBaseWriter {
 public:
  static Result<std::unique_ptr<KlBaseWriter>> create(const std::string& path,
                                                      const KlBaseHeader& header);
  ~KlBaseWriter();
  Status write(const KlBaseRow& row);
  // Flushes and closes; an error if any write failed or rows are missing.
  Status finish();

 private:
  KlBaseWriter(std::FILE* f, std::string path, KlBaseHeader h) : f_(f), path_(path), h_(h) {}
  std::FILE* f_;
  std::string path_;
  KlBaseHeader h_;
  uint64_t rows_ = 0;
};

class KlBaseReader {
 public:
  // Opens the file and checks its header and its size against the header.
  static Result<std::unique_ptr<KlBaseReader>> open(const std::string& path);
  ~KlBaseReader();
  const KlBaseHeader& header() const { return h_; }
  // The next row, in file order.
  Status read(KlBaseRow* row);

 private:
  KlBaseReader(std::FILE* f, std::string path, KlBaseHeader h) : f_(f), path_(path), h_(h) {}
  std::FILE* f_;
  std::string path_;
  KlBaseHeader h_;
  std::vector<uint8_t> buf_;
};

}  // namespace bitnet::eval
