// `bitnet tokenize` and `bitnet detokenize`: text <-> token ids with the model's tokenizer.
//
//   bitnet tokenize --model M.gguf [--tokenizer tokenizer.json] --prompt TEXT
//                   [--json] [--no-bos] [--special] [--pre NAME] [--chat-template NAME
//                   [--system TEXT]] [--verbose]
//   bitnet detokenize --model M.gguf [--tokenizer T] [--ids "1 2 3"] [--json] [--no-special]
//
// --verbose reports which tokenizer and pre-tokenizer ran (on stderr) and prints each id with
// its piece. --chat-template wraps the prompt as a user message (special tokens then parsed).
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/command.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::cli {

std::vector<Command> register_tokenize(CLI::App& app);

namespace {

using nlohmann::json;
using tokenizer::TokenId;
using tokenizer::Tokenizer;

struct SourceFlags {
  std::string model;
  std::string tokenizer;
  std::string pre;
  bool verbose = false;
};

void add_source_flags(CLI::App* sub, SourceFlags& f) {
  sub->add_option("--model,-m", f.model, "GGUF model (its tokenizer.ggml.* metadata)");
  sub->add_option("--tokenizer", f.tokenizer,
                  "Tokenizer to use instead: a tokenizer.json or a GGUF file");
  sub->add_option("--pre", f.pre,
                  "Force the pre-tokenizer (default, llama-bpe, gpt-2, qwen2, ...)");
  sub->add_flag("--verbose,-v", f.verbose, "Report the tokenizer in use and each token's piece");
}

Result<Tokenizer> load_tokenizer(const SourceFlags& f) {
  const std::string& path = f.tokenizer.empty() ? f.model : f.tokenizer;
  if (path.empty()) return make_error("give --model or --tokenizer");
  tokenizer::LoadOptions opts;
  if (!f.pre.empty()) opts.pre_tokenizer = f.pre;
  BITNET_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::load(path, opts));
  if (f.verbose) std::fprintf(stderr, "tokenizer: %s\n", tok.describe().c_str());
  return tok;
}

json info_json(const Tokenizer& tok) {
  const tokenizer::TokenizerInfo i = tok.info();
  return json{{"model", i.model},
              {"source", i.source},
              {"source_kind", i.source_kind},
              {"pre_tokenizer", i.pre_tokenizer},
              {"pre_tokenizer_origin", i.pre_tokenizer_origin},
              {"n_tokens", i.n_tokens},
              {"bos", i.bos},
              {"eos", i.eos},
              {"add_bos", i.add_bos}};
}

// Pieces may be partial UTF-8 characters; JSON needs valid text, so show bytes escaped.
std::string printable(std::string_view piece) {
  std::string out;
  for (unsigned char c : piece) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return json(out).dump(-1, ' ', false, json::error_handler_t::replace);
}

struct TokenizeFlags {
  SourceFlags source;
  std::string prompt;
  std::string chat_template;
  std::string system;
  bool as_json = false;
  bool no_bos = false;
  bool special = false;
};

int run_tokenize(const TokenizeFlags& f) {
  auto tok = load_tokenizer(f.source);
  if (!tok.ok()) return fail(tok.error());
  std::string text = f.prompt;
  bool parse_special = f.special;
  if (!f.chat_template.empty()) {
    auto tmpl = tokenizer::chat_template_from_name(f.chat_template);
    if (!tmpl.ok()) return fail(tmpl.error());
    std::vector<tokenizer::ChatMessage> messages;
    if (!f.system.empty()) messages.push_back({"system", f.system});
    messages.push_back({"user", f.prompt});
    auto applied = tokenizer::apply_chat_template(*tmpl, messages, true);
    if (!applied.ok()) return fail(applied.error());
    text = *applied;
    parse_special = true;  // the template's markers are special tokens
  }
  const std::vector<TokenId> ids =
      tok->encode(text, {.add_special = !f.no_bos, .parse_special = parse_special});
  if (f.as_json) {
    json pieces = json::array();
    for (TokenId id : ids) {
      pieces.push_back(json::parse(printable(tok->token_to_piece(id))));
    }
    json out{
        {"tokenizer", info_json(*tok)}, {"ids", ids}, {"pieces", pieces}, {"n_tokens", ids.size()}};
    std::printf("%s\n", out.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
    return kExitOk;
  }
  if (f.source.verbose) {
    for (TokenId id : ids) std::printf("%7d  %s\n", id, printable(tok->token_to_piece(id)).c_str());
    std::fprintf(stderr, "%zu tokens\n", ids.size());
    return kExitOk;
  }
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
  std::printf("%s\n", line.c_str());
  return kExitOk;
}

struct DetokenizeFlags {
  SourceFlags source;
  std::string ids;
  bool as_json = false;
  bool no_special = false;
};

// Ids separated by spaces, commas or brackets (so JSON arrays paste in too).
Result<std::vector<TokenId>> parse_ids(const std::string& text, size_t n_tokens) {
  std::string cleaned = text;
  for (char& c : cleaned) {
    if (c == ',' || c == '[' || c == ']' || c == '\n' || c == '\t') c = ' ';
  }
  std::istringstream in(cleaned);
  std::vector<TokenId> ids;
  std::string word;
  while (in >> word) {
    char* end = nullptr;
    const long v = std::strtol(word.c_str(), &end, 10);
    if (*end != '\0' || v < 0 || static_cast<size_t>(v) >= n_tokens) {
      return make_error("bad token id '%s' (vocabulary has %zu tokens)", word.c_str(), n_tokens);
    }
    ids.push_back(static_cast<TokenId>(v));
  }
  return ids;
}

int run_detokenize(const DetokenizeFlags& f) {
  auto tok = load_tokenizer(f.source);
  if (!tok.ok()) return fail(tok.error());
  std::string input = f.ids;
  if (input.empty()) {
    std::stringstream ss;
    ss << std::cin.rdbuf();
    input = ss.str();
  }
  auto ids = parse_ids(input, tok->n_tokens());
  if (!ids.ok()) return fail(ids.error());
  const std::string text = tok->decode(*ids, {.render_special = !f.no_special});
  if (f.as_json) {
    json out{{"tokenizer", info_json(*tok)}, {"text", text}};
    std::printf("%s\n", out.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
    return kExitOk;
  }
  if (f.source.verbose) {
    for (TokenId id : *ids)
      std::printf("%7d  %s\n", id, printable(tok->token_to_piece(id)).c_str());
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::printf("\n");
  return kExitOk;
}

}  // namespace

std::vector<Command> register_tokenize(CLI::App& app) {
  auto tf = std::make_shared<TokenizeFlags>();
  auto* tsub = app.add_subcommand("tokenize", "Print the token ids of a text");
  add_source_flags(tsub, tf->source);
  tsub->add_option("--prompt,-p", tf->prompt, "Text to tokenize")->required();
  tsub->add_flag("--json", tf->as_json, "Print one JSON object (ids, pieces, tokenizer)");
  tsub->add_flag("--no-bos", tf->no_bos, "Do not add BOS/EOS even if the vocabulary asks");
  tsub->add_flag("--special", tf->special,
                 "Parse special-token text such as <|eot_id|> into the special id");
  tsub->add_option("--chat-template", tf->chat_template,
                   "Wrap the prompt as a user turn: " + tokenizer::chat_template_names());
  tsub->add_option("--system", tf->system, "System message for --chat-template");

  auto df = std::make_shared<DetokenizeFlags>();
  auto* dsub = app.add_subcommand("detokenize", "Print the text of token ids");
  add_source_flags(dsub, df->source);
  dsub->add_option("--ids", df->ids, "Token ids (spaces or commas); read from stdin if absent");
  dsub->add_flag("--json", df->as_json, "Print one JSON object");
  dsub->add_flag("--no-special", df->no_special, "Do not print control tokens' text");

  return {Command{tsub, [=] { return run_tokenize(*tf); }},
          Command{dsub, [=] { return run_detokenize(*df); }}};
}

}  // namespace bitnet::cli
