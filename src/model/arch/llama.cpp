// llama (upstream llama.cpp's llama graph, models/llama.cpp there) with ternary TQ1_0 / TQ2_0 or
// float projections: the plain Llama decoder. Against the BitNet families it has no sub-norms
// (the attention output and the FFN product go straight into their projections), a SiLU-gated
// FFN, NORM RoPE (adjacent pairs), and the LM head is output.weight when the file has one (the
// loader's choice, Model::head()).
#include "model/arch/forward.h"

namespace bitnet::model {

void forward_llama(Blocks& b) {
  const ModelConfig& c = b.config();
  Scratch& s = b.scratch();
  b.embed(s.x);
  for (int l = 0; l < static_cast<int>(c.n_layers); ++l) {
    const LayerWeights& L = b.layer(l);
    // Attention: x += Wo softmax(rope(Wq h) rope(Wk h)^T / sqrt(hd)) Wv h, h = norm(x).
    b.rms_norm(l, Op::kAttnNorm, s.x, L.attn_norm, s.h);
    b.project(l, s.h, {{Op::kQProj, L.q, s.q}, {Op::kKProj, L.k, s.k}, {Op::kVProj, L.v, s.v}});
    b.rope(l, Op::kQRope, s.q, static_cast<int>(c.n_heads), RopeMode::kNorm);
    b.rope(l, Op::kKRope, s.k, static_cast<int>(c.n_kv_heads), RopeMode::kNorm);
    b.attention(l, s.q, s.k, s.v, s.att);
    b.project(l, s.att, {{Op::kOProj, L.o, s.o}});
    b.add(l, Op::kAttnResidual, s.x, s.o);
    // Feed-forward: x += Wd (silu(Wg h) * Wu h), h = norm(x).
    b.rms_norm(l, Op::kFfnNorm, s.x, L.ffn_norm, s.h);
    b.project(l, s.h, {{Op::kGateProj, L.gate, s.gate}, {Op::kUpProj, L.up, s.up}});
    b.ffn_activation(l, FfnActivation::kSilu, s.gate, s.up, s.act);
    b.project(l, s.act, {{Op::kDownProj, L.down, s.o}});
    b.add(l, Op::kFfnResidual, s.x, s.o);
  }
  b.head(s.x);
}

}  // namespace bitnet::model
