#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "tokenizer/bpe.h"
#include "tokenizer/byte_mapping.h"
#include "tokenizer/special_tokens.h"
#include "tokenizer/spm.h"
#include "tokenizer/utf8.h"

namespace bitnet::tokenizer {

struct Tokenizer::Impl {
  VocabSpec spec;
  std::optional<BytePairEncoder> bpe;
  std::optional<SentencePieceEncoder> spm;
  SpecialTokenSplitter specials;
  std::vector<std::string> pieces;  // bytes each token decodes to (special ones: their text)
};

namespace {

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  size_t pos = 0;
  while (true) {
    const size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out.append(to);
    pos = hit + from.size();
  }
  out.append(s, pos);
  s.swap(out);
}

// "<0x41>" -> 0x41, as the reference reads byte tokens (characters 3 and 4, base 16).
char byte_token_value(const std::string& text) {
  const std::string hex = text.size() >= 5 ? text.substr(3, 2) : std::string();
  return static_cast<char>(std::strtol(hex.c_str(), nullptr, 16));
}

// Byte-level token text -> bytes; a character outside the byte mapping is kept visible the way
// the reference shows it, so a broken vocabulary does not silently lose text.
std::string decode_byte_level_lossy(const std::string& text) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    const DecodedChar c = decode_utf8_lenient(text.data() + i, text.size() - i);
    i += c.len;
    if (auto b = codepoint_to_byte(c.cp)) {
      out.push_back(static_cast<char>(*b));
      continue;
    }
    std::string utf8;
    append_utf8(utf8, c.cp);
    out += "[UNK_BYTE_0x";
    for (char u : utf8) {
      char hex[4];
      std::snprintf(hex, sizeof(hex), "%02x", static_cast<uint8_t>(u));
      out += hex;
    }
    out += text + "]";
  }
  return out;
}

std::string piece_for(const VocabSpec& spec, const TokenData& t) {
  constexpr uint32_t kVerbatim = tokattr::kUnknown | tokattr::kControl | tokattr::kUserDefined;
  if (t.attr & kVerbatim) return t.text;
  if (t.attr & tokattr::kNormal) {
    if (spec.model == TokenizerModel::kBytePairBpe) return decode_byte_level_lossy(t.text);
    std::string s = t.text;
    replace_all(s, kSpmSpace, " ");
    return s;
  }
  if (t.attr & tokattr::kByte) return std::string(1, byte_token_value(t.text));
  return {};  // unused / undefined tokens print nothing
}

// The reference's optional detokenizer clean-up, pass by pass, on the decoded bytes.
void clean_up_spaces(std::string& text) {
  // " ?", " !", " .", " ," lose the space.
  {
    const std::string in = text;
    size_t n = in.empty() ? 0 : 1;
    for (size_t i = 1; i < in.size(); ++i) {
      const char x = in[i];
      if (in[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) --n;
      text[n++] = x;
    }
    text.resize(n);
  }
  // " ' " becomes "'" (the byte after the quote is zeroed and skipped, as in the reference, so
  // the following comparison sees a NUL there).
  {
    std::string in = text;
    const size_t size = in.size();
    size_t n = size ? 1 : 0;
    for (size_t i = 1; i < size; ++i) {
      const char x = in[i];
      if (x == '\'' && i + 1 < size && in[i - 1] == ' ' && in[i + 1] == ' ') {
        --n;
        in[++i] = '\0';
      }
      text[n++] = x;
    }
    text.resize(n);
  }
  // " 's", " 'm", " 're", " 've" lose the space.
  {
    const std::string in = text;
    const size_t size = in.size();
    size_t n = size ? 1 : 0;
    for (size_t i = 1; i < size; ++i) {
      const char x = in[i];
      if (in[i - 1] == ' ' && x == '\'' && i + 1 < size) {
        const char x1 = in[i + 1];
        if (x1 == 's' || x1 == 'm') {
          --n;
        } else if (i + 2 < size && (x1 == 'r' || x1 == 'v') && in[i + 2] == 'e') {
          --n;
        }
      }
      text[n++] = x;
    }
    text.resize(n);
  }
}

}  // namespace

Result<Tokenizer> Tokenizer::from_spec(VocabSpec spec) {
  if (spec.tokens.empty()) return make_error("%s: vocabulary is empty", spec.source.c_str());
  auto impl = std::make_shared<Impl>();
  if (spec.model == TokenizerModel::kBytePairBpe) {
    auto bpe = BytePairEncoder::build(spec.tokens, spec.merges);
    if (!bpe.ok()) return make_error("%s: %s", spec.source.c_str(), bpe.message().c_str());
    impl->bpe.emplace(std::move(bpe).value());
  } else {
    auto spm = SentencePieceEncoder::build(spec.tokens, spec.unk);
    if (!spm.ok()) return make_error("%s: %s", spec.source.c_str(), spm.message().c_str());
    impl->spm.emplace(std::move(spm).value());
  }
  // The merges live on in the encoder's tables; their text form (some 20 MB for a 128k-token
  // vocabulary) is not needed again.
  std::vector<std::pair<std::string, std::string>>().swap(spec.merges);
  impl->pieces.reserve(spec.tokens.size());
  for (const TokenData& t : spec.tokens) impl->pieces.push_back(piece_for(spec, t));
  impl->spec = std::move(spec);
  // After the move: the splitter keeps views into the token texts it now owns.
  impl->specials = SpecialTokenSplitter(impl->spec.tokens);
  Tokenizer tok;
  tok.impl_ = std::move(impl);
  return tok;
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, const EncodeOptions& options) const {
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 4);
  encode(text, options, out);
  return out;
}

void Tokenizer::encode(std::string_view text, const EncodeOptions& options,
                       std::vector<TokenId>& out) const {
  const Impl& m = *impl_;
  const VocabSpec& spec = m.spec;
  thread_local std::vector<Fragment> fragments;
  m.specials.split(text, options.parse_special, fragments);
  const bool add_bos = options.add_special && spec.add_bos && spec.bos != kNoToken;
  const bool add_eos = options.add_special && spec.add_eos && spec.eos != kNoToken;
  if (add_bos) out.push_back(spec.bos);

  if (m.bpe) {
    thread_local std::vector<std::string_view> words;
    std::string canonical;
    for (const Fragment& f : fragments) {
      if (f.token != kNoToken) {
        out.push_back(f.token);
        continue;
      }
      std::string_view piece = text.substr(f.begin, f.length);
      // Malformed UTF-8 is tokenised as the reference re-encodes it (see utf8.h).
      if (!is_canonical_utf8(piece)) {
        canonical = canonicalize_utf8(piece);
        piece = canonical;
      }
      words.clear();
      pre_tokenize(spec.pre, piece, words);
      for (std::string_view w : words) m.bpe->encode_word(w, spec.ignore_merges, out);
    }
  } else {
    // SentencePiece: a space is prepended at the start and after every special token (when the
    // vocabulary asks for it), then spaces become U+2581.
    bool after_special = true;
    std::string buffer;
    for (const Fragment& f : fragments) {
      if (f.token != kNoToken) {
        out.push_back(f.token);
        after_special = true;
        continue;
      }
      buffer.clear();
      if (spec.add_space_prefix && after_special) buffer.push_back(' ');
      buffer.append(text.substr(f.begin, f.length));
      replace_all(buffer, " ", kSpmSpace);
      m.spm->encode(buffer, out);
      after_special = false;
    }
  }
  if (add_eos) out.push_back(spec.eos);
}

std::string_view Tokenizer::token_to_piece(TokenId id, bool render_special) const {
  const Impl& m = *impl_;
  if (id < 0 || static_cast<size_t>(id) >= m.pieces.size()) return {};
  if (!render_special && (m.spec.tokens[id].attr & (tokattr::kControl | tokattr::kUnknown))) {
    return {};
  }
  return m.pieces[id];
}

std::string Tokenizer::decode(std::span<const TokenId> ids, const DecodeOptions& options) const {
  const VocabSpec& spec = impl_->spec;
  bool strip_space = spec.add_space_prefix;  // undo the prefix SentencePiece encoding added
  if (options.remove_special && spec.add_bos && !ids.empty() && ids.front() == spec.bos) {
    strip_space = false;
    ids = ids.subspan(1);
  }
  if (options.remove_special && spec.add_eos && !ids.empty() && ids.back() == spec.eos) {
    ids = ids.first(ids.size() - 1);
  }
  std::string out;
  for (TokenId id : ids) {
    std::string_view piece = token_to_piece(id, options.render_special);
    if (strip_space && !piece.empty() && piece.front() == ' ') piece.remove_prefix(1);
    strip_space = false;
    out.append(piece);
  }
  if (options.clean_spaces) clean_up_spaces(out);
  return out;
}

const std::string& Tokenizer::token_text(TokenId id) const {
  static const std::string kEmpty;
  if (id < 0 || static_cast<size_t>(id) >= impl_->spec.tokens.size()) return kEmpty;
  return impl_->spec.tokens[id].text;
}

uint32_t Tokenizer::token_attr(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->spec.tokens.size()) return tokattr::kUndefined;
  return impl_->spec.tokens[id].attr;
}

std::optional<TokenId> Tokenizer::find_token(std::string_view stored_text) const {
  const auto& tokens = impl_->spec.tokens;
  for (size_t i = tokens.size(); i-- > 0;) {
    if (tokens[i].text == stored_text) return static_cast<TokenId>(i);
  }
  return std::nullopt;
}

size_t Tokenizer::n_tokens() const { return impl_->spec.tokens.size(); }
TokenId Tokenizer::bos() const { return impl_->spec.bos; }
TokenId Tokenizer::eos() const { return impl_->spec.eos; }
TokenId Tokenizer::eot() const { return impl_->spec.eot; }
bool Tokenizer::add_bos() const { return impl_->spec.add_bos; }
const VocabSpec& Tokenizer::spec() const { return impl_->spec; }
const std::vector<TokenId>& Tokenizer::eog_tokens() const { return impl_->spec.eog; }

bool Tokenizer::is_eog(TokenId id) const {
  const auto& eog = impl_->spec.eog;
  return std::binary_search(eog.begin(), eog.end(), id);
}

TokenizerInfo Tokenizer::info() const {
  const VocabSpec& s = impl_->spec;
  TokenizerInfo i;
  const bool bpe = s.model == TokenizerModel::kBytePairBpe;
  i.model = s.model_name + (bpe ? " (byte-level BPE)" : " (SentencePiece BPE)");
  i.source = s.source;
  i.source_kind = s.source_kind;
  if (bpe) {
    i.pre_tokenizer = std::string(pre_tokenizer_name(s.pre));
    i.pre_tokenizer_origin = s.pre_origin;
    i.n_merges = impl_->bpe->n_merges();
  }
  i.n_tokens = s.tokens.size();
  i.n_special = impl_->specials.size();
  i.bos = s.bos;
  i.eos = s.eos;
  i.eot = s.eot;
  i.add_bos = s.add_bos;
  i.add_eos = s.add_eos;
  i.add_space_prefix = s.add_space_prefix;
  i.clean_spaces = s.clean_spaces;
  return i;
}

std::string Tokenizer::describe() const {
  const TokenizerInfo i = info();
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%s, %zu tokens, %zu merges, bos %d%s, eos %d, from %s %s",
                i.model.c_str(), i.n_tokens, i.n_merges, i.bos, i.add_bos ? " (added)" : "", i.eos,
                i.source_kind.c_str(), i.source.c_str());
  std::string s = buf;
  if (!i.pre_tokenizer.empty()) {
    s += "; pre-tokenizer " + i.pre_tokenizer + " (" + i.pre_tokenizer_origin + ")";
  }
  return s;
}

}  // namespace bitnet::tokenizer
