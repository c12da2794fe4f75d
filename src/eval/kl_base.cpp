#include "eval/kl_base.h"

#include <bit>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

namespace bitnet::eval {

// The file is written and read with memcpy of native values.
static_assert(std::endian::native == std::endian::little, "the KL base format is little-endian");

namespace {

constexpr char kMagic[8] = {'B', 'N', 'K', 'L', 'B', 'A', 'S', 'E'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 48;

size_t row_bytes(uint32_t n_vocab) { return 20 + 2 * static_cast<size_t>(n_vocab); }

template <typename T>
void put(std::vector<uint8_t>& b, size_t& at, T v) {
  std::memcpy(b.data() + at, &v, sizeof(T));
  at += sizeof(T);
}

template <typename T>
T get(const std::vector<uint8_t>& b, size_t& at) {
  T v;
  std::memcpy(&v, b.data() + at, sizeof(T));
  at += sizeof(T);
  return v;
}

}  // namespace

uint64_t hash_tokens(std::span<const int32_t> tokens) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int32_t t : tokens) {
    const auto u = static_cast<uint32_t>(t);
    for (int k = 0; k < 4; ++k) {
      h ^= (u >> (8 * k)) & 0xffu;
      h *= 0x100000001b3ull;
    }
  }
  return h;
}

Result<std::unique_ptr<KlBaseWriter>> KlBaseWriter::create(const std::string& path,
                                                           const KlBaseHeader& h) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return make_error("cannot write %s: %s", path.c_str(), std::strerror(errno));
  std::vector<uint8_t> b(kHeaderBytes, 0);
  std::memcpy(b.data(), kMagic, sizeof(kMagic));
  size_t at = sizeof(kMagic);
  put(b, at, kVersion);
  put(b, at, h.n_vocab);
  put(b, at, h.n_ctx);
  put(b, at, h.n_chunks);
  put(b, at, h.n_tokens);
  put(b, at, h.tokens_hash);
  put(b, at, h.rows_per_chunk);
  put(b, at, uint32_t{0});
  std::unique_ptr<KlBaseWriter> w(new KlBaseWriter(f, path, h));
  if (std::fwrite(b.data(), 1, b.size(), f) != b.size())
    return make_error("cannot write %s: %s", path.c_str(), std::strerror(errno));
  return w;
}

KlBaseWriter::~KlBaseWriter() {
  if (f_ != nullptr) std::fclose(f_);
}

Status KlBaseWriter::write(const KlBaseRow& row) {
  if (row.log_probs.codes.size() != h_.n_vocab)
    return make_error("KL base row has %zu log-probabilities, not %u", row.log_probs.codes.size(),
                      h_.n_vocab);
  std::vector<uint8_t> b(row_bytes(h_.n_vocab));
  size_t at = 0;
  put(b, at, row.argmax);
  put(b, at, row.nll);
  put(b, at, row.log_probs.scale);
  put(b, at, row.log_probs.min_log_prob);
  std::memcpy(b.data() + at, row.log_probs.codes.data(), 2 * row.log_probs.codes.size());
  if (std::fwrite(b.data(), 1, b.size(), f_) != b.size())
    return make_error("cannot write %s: %s", path_.c_str(), std::strerror(errno));
  ++rows_;
  return {};
}

Status KlBaseWriter::finish() {
  std::FILE* f = std::exchange(f_, nullptr);
  const bool closed = std::fclose(f) == 0;
  if (!closed) return make_error("cannot write %s: %s", path_.c_str(), std::strerror(errno));
  const uint64_t want = uint64_t{h_.n_chunks} * h_.rows_per_chunk;
  if (rows_ != want)
    return make_error("%s: %llu rows written, %llu expected", path_.c_str(),
                      static_cast<unsigned long long>(rows_),
                      static_cast<unsigned long long>(want));
  return {};
}

Result<std::unique_ptr<KlBaseReader>> KlBaseReader::open(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr)
    return make_error("cannot open KL base %s: %s", path.c_str(), std::strerror(errno));
  std::unique_ptr<KlBaseReader> r(new KlBaseReader(f, path, {}));
  std::vector<uint8_t> b(kHeaderBytes);
  if (std::fread(b.data(), 1, b.size(), f) != b.size() ||
      std::memcmp(b.data(), kMagic, sizeof(kMagic)) != 0)
    return make_error("%s is not a bitnet KL base file (written by --kl-divergence-base)",
                      path.c_str());
  size_t at = sizeof(kMagic);
  const auto version = get<uint32_t>(b, at);
  if (version != kVersion)
    return make_error("%s: KL base version %u, this build reads %u", path.c_str(), version,
                      kVersion);
  KlBaseHeader& h = r->h_;
  h.n_vocab = get<uint32_t>(b, at);
  h.n_ctx = get<uint32_t>(b, at);
  h.n_chunks = get<uint32_t>(b, at);
  h.n_tokens = get<uint64_t>(b, at);
  h.tokens_hash = get<uint64_t>(b, at);
  h.rows_per_chunk = get<uint32_t>(b, at);
  if (h.n_vocab == 0 || h.n_ctx < 4 || h.n_chunks == 0 ||
      h.n_tokens != uint64_t{h.n_ctx} * h.n_chunks || h.rows_per_chunk != h.n_ctx - 1 - h.n_ctx / 2)
    return make_error("%s: inconsistent KL base header", path.c_str());
  // The size must be exactly the header's: a truncated file is refused before any evaluation.
  if (std::fseek(f, 0, SEEK_END) != 0)
    return make_error("cannot read %s: %s", path.c_str(), std::strerror(errno));
  const long size = std::ftell(f);
  const uint64_t want =
      kHeaderBytes + uint64_t{h.n_chunks} * h.rows_per_chunk * row_bytes(h.n_vocab);
  if (size < 0 || static_cast<uint64_t>(size) != want)
    return make_error("%s: %ld bytes, the header implies %llu (truncated?)", path.c_str(), size,
                      static_cast<unsigned long long>(want));
  if (std::fseek(f, static_cast<long>(kHeaderBytes), SEEK_SET) != 0)
    return make_error("cannot read %s: %s", path.c_str(), std::strerror(errno));
  r->buf_.resize(row_bytes(h.n_vocab));
  return r;
}

KlBaseReader::~KlBaseReader() {
  if (f_ != nullptr) std::fclose(f_);
}

Status KlBaseReader::read(KlBaseRow* row) {
  if (std::fread(buf_.data(), 1, buf_.size(), f_) != buf_.size())
    return make_error("cannot read %s: unexpected end of file", path_.c_str());
  size_t at = 0;
  row->argmax = get<int32_t>(buf_, at);
  row->nll = get<double>(buf_, at);
  row->log_probs.scale = get<float>(buf_, at);
  row->log_probs.min_log_prob = get<float>(buf_, at);
  row->log_probs.codes.resize(h_.n_vocab);
  std::memcpy(row->log_probs.codes.data(), buf_.data() + at, 2 * size_t{h_.n_vocab});
  if (row->argmax < 0 || static_cast<uint32_t>(row->argmax) >= h_.n_vocab)
    return make_error("%s: corrupt row (argmax %d)", path_.c_str(), row->argmax);
  return {};
}

}  // namespace bitnet::eval
