// `bitnet inspect FILE [--json]`: what a GGUF file holds - metadata (long arrays summarised),
// tensors (name, type, shape, offset, bytes) and a model summary.
#include <cinttypes>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "gguf/reader.h"
#include "model/config.h"
#include "synth/synth.h"

namespace bitnet::cli {
namespace {

using nlohmann::json;

constexpr size_t kArrayPreview = 8;  // items shown of a long array

json value_to_json(const gguf::Value& v) {
  return std::visit(
      [](const auto& x) -> json {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, gguf::Array>) {
          json items = json::array();
          for (size_t i = 0; i < x.items.size() && i < kArrayPreview; ++i) {
            items.push_back(value_to_json(x.items[i]));
          }
          if (x.items.size() <= kArrayPreview) return items;
          return json{{"array_of", gguf::value_type_name(x.element_type)},
                      {"count", x.items.size()},
                      {"first", items}};
        } else {
          return json(x);
        }
      },
      v.storage());
}

struct TypeTotals {
  uint64_t tensors = 0, elements = 0, bytes = 0;
};

std::string human_bytes(uint64_t n) {
  char buf[32];
  if (n >= (uint64_t{1} << 30)) {
    std::snprintf(buf, sizeof buf, "%.2f GiB", n / double(uint64_t{1} << 30));
  } else if (n >= (uint64_t{1} << 20)) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", n / double(uint64_t{1} << 20));
  } else if (n >= 1024) {
    std::snprintf(buf, sizeof buf, "%.1f KiB", n / 1024.0);
  } else {
    std::snprintf(buf, sizeof buf, "%" PRIu64 " B", n);
  }
  return buf;
}

// The LM head is output.weight when the family's graph uses it (llama) and the file has it; the
// BitNet families always use token_embd (model/weights.cpp).
bool head_is_output(const model::ModelConfig& c, const gguf::File& f) {
  return !model::is_bitnet_family(c.arch) &&
         f.find_tensor(model::tensor_name(model::TensorRole::kOutput)) != nullptr;
}

// The published model a file's shape is, "" if none (see synth::match_published_shape).
std::string published_shape(const model::ModelConfig& c) {
  const synth::Preset* p = synth::match_published_shape(c);
  return p != nullptr ? std::string(p->model) : "";
}

json model_json(const model::ModelConfig& c, const gguf::File& f) {
  const std::string shape = published_shape(c);
  return json{
      {"arch", model::arch_name(c.arch)},
      {"family_graph", model::family_graph(c.arch)},
      {"published_shape", shape.empty() ? json(nullptr) : json(shape)},
      {"ffn_activation",
       model::ffn_activation(c.arch) == model::FfnActivation::kSilu ? "silu" : "relu_squared"},
      {"n_embd", c.n_embd},
      {"n_layers", c.n_layers},
      {"n_heads", c.n_heads},
      {"n_kv_heads", c.n_kv_heads},
      {"head_dim", c.head_dim()},
      {"n_ff", c.n_ff},
      {"n_vocab", c.n_vocab},
      {"context_length", c.n_ctx_train},
      {"rope_freq_base", c.rope_freq_base},
      {"rms_eps", c.rms_eps},
      {"tied_head", !head_is_output(c, f)}};
}

int run_inspect(const std::string& path, bool as_json) {
  auto file = gguf::File::open(path);
  if (!file) return fail(file.error());
  const gguf::File& f = *file;

  std::map<std::string, TypeTotals> by_type;
  uint64_t params = 0;
  for (const auto& t : f.tensors()) {
    auto& tt = by_type[std::string(gguf::tensor_type_name(t.type))];
    tt.tensors++;
    tt.elements += t.n_elements;
    tt.bytes += t.n_bytes;
    params += t.n_elements;
  }
  auto config = model::read_config(f);

  if (as_json) {
    json j;
    j["file"] = path;
    j["gguf_version"] = f.version();
    j["file_size"] = f.file_size();
    j["alignment"] = f.alignment();
    j["data_offset"] = f.data_offset();
    json meta = json::object();
    for (const auto& kv : f.metadata()) meta[kv.key] = value_to_json(kv.value);
    j["metadata"] = meta;
    json tensors = json::array();
    for (const auto& t : f.tensors()) {
      tensors.push_back(json{{"name", t.name},
                             {"type", gguf::tensor_type_name(t.type)},
                             {"shape", t.dims},
                             {"offset", t.offset},
                             {"bytes", t.n_bytes}});
    }
    j["tensors"] = tensors;
    json summary = json{{"tensor_count", f.tensors().size()}, {"parameters", params}};
    json types = json::object();
    for (const auto& [name, tt] : by_type) {
      types[name] = json{{"tensors", tt.tensors}, {"elements", tt.elements}, {"bytes", tt.bytes}};
    }
    summary["by_type"] = types;
    if (config) {
      summary["model"] = model_json(*config, f);
    } else {
      summary["model"] = nullptr;
      summary["model_error"] = config.message();
    }
    j["summary"] = summary;
    // Replace invalid UTF-8 (possible in hostile metadata) rather than failing to print.
    std::puts(j.dump(2, ' ', false, json::error_handler_t::replace).c_str());
    return kExitOk;
  }

  std::printf("%s: GGUF v%u, %s, alignment %" PRIu64 ", tensor data at byte %" PRIu64 "\n",
              path.c_str(), f.version(), human_bytes(f.file_size()).c_str(), f.alignment(),
              f.data_offset());
  std::printf("\nmetadata (%zu keys):\n", f.metadata().size());
  for (const auto& kv : f.metadata()) {
    std::printf("  %-44s %s\n", kv.key.c_str(), kv.value.to_display(kArrayPreview).c_str());
  }
  std::printf("\ntensors (%zu):\n", f.tensors().size());
  std::printf("  %-36s %-6s %-16s %14s %12s\n", "name", "type", "shape", "offset", "bytes");
  for (const auto& t : f.tensors()) {
    std::printf("  %-36s %-6s %-16s %14" PRIu64 " %12" PRIu64 "\n", t.name.c_str(),
                std::string(gguf::tensor_type_name(t.type)).c_str(), t.shape_string().c_str(),
                t.offset, t.n_bytes);
  }
  std::printf("\nsummary:\n");
  std::printf("  parameters: %" PRIu64 " in %zu tensors\n", params, f.tensors().size());
  for (const auto& [name, tt] : by_type) {
    std::printf("  %-6s %4" PRIu64 " tensors %14" PRIu64 " elements %12s\n", name.c_str(),
                tt.tensors, tt.elements, human_bytes(tt.bytes).c_str());
  }
  if (config) {
    const auto& c = *config;
    std::printf(
        "  model: %s (%s FFN), d=%u layers=%u heads=%u kv_heads=%u head_dim=%u ff=%u "
        "vocab=%u ctx=%u rope_base=%g eps=%g, head %s\n",
        std::string(model::arch_name(c.arch)).c_str(),
        model::ffn_activation(c.arch) == model::FfnActivation::kSilu ? "SiLU" : "ReLU^2", c.n_embd,
        c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim(), c.n_ff, c.n_vocab, c.n_ctx_train,
        c.rope_freq_base, c.rms_eps, head_is_output(c, f) ? "output.weight" : "tied to token_embd");
    std::printf("  family: %s (%s)\n", std::string(model::arch_name(c.arch)).c_str(),
                std::string(model::family_graph(c.arch)).c_str());
    const std::string shape = published_shape(c);
    std::printf("  shape: %s\n", shape.empty() ? "no published model's" : shape.c_str());
  } else {
    std::printf("  model: not a BitNet model (%s)\n", config.message().c_str());
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> register_inspect(CLI::App& app) {
  auto* sub =
      app.add_subcommand("inspect", "Show a GGUF file's metadata, tensors and model summary");
  auto path = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  sub->add_option("file", *path, "GGUF file")->required();
  sub->add_flag("--json", *as_json, "Print one JSON object");
  return {Command{sub, [=] { return run_inspect(*path, *as_json); }}};
}

}  // namespace bitnet::cli
