// BitNet b1.58 (FACTS.md section 1, summarised in the README): a Llama-style decoder whose
// projections are BitLinear (ternary weights, int8 activations), with an extra RMSNorm in front
// of the attention output projection and of the FFN down projection (the sub-norms). The
// families differ only in the FFN activation: ReLU^2 for bitnet-b1.58 / bitnet-25 (the official
// 2B4T file), SiLU for upstream llama.cpp's bitnet (whose optional .scale tensors the
// projection block applies).
#include "model/arch/forward.h"

namespace bitnet::model {

void forward_bitnet(Blocks& b) {
  const ModelConfig& c = b.config();
  const FfnActivation act = ffn_activation(c.arch);
  Scratch& s = b.scratch();
  b.embed(s.x);
  for (int l = 0; l < static_cast<int>(c.n_layers); ++l) {
    const LayerWeights& L = b.layer(l);
    // Attention: x += Wo subnorm(softmax(rope(Wq h) rope(Wk h)^T / sqrt(hd)) Wv h), h = norm(x).
    b.rms_norm(l, Op::kAttnNorm, s.x, L.attn_norm, s.h);
    b.project(l, s.h, {{Op::kQProj, L.q, s.q}, {Op::kKProj, L.k, s.k}, {Op::kVProj, L.v, s.v}});
    b.rope(l, Op::kQRope, s.q, static_cast<int>(c.n_heads), RopeMode::kNeox);
    b.rope(l, Op::kKRope, s.k, static_cast<int>(c.n_kv_heads), RopeMode::kNeox);
    b.attention(l, s.q, s.k, s.v, s.att);
    b.rms_norm(l, Op::kAttnSubNorm, s.att, L.attn_sub_norm, s.h);
    b.project(l, s.h, {{Op::kOProj, L.o, s.o}});
    b.add(l, Op::kAttnResidual, s.x, s.o);
    // Feed-forward: x += Wd subnorm(act(Wg h) * Wu h), h = norm(x).
    b.rms_norm(l, Op::kFfnNorm, s.x, L.ffn_norm, s.h);
    b.project(l, s.h, {{Op::kGateProj, L.gate, s.gate}, {Op::kUpProj, L.up, s.up}});
    b.ffn_activation(l, act, s.gate, s.up, s.act);
    b.rms_norm(l, Op::kFfnSubNorm, s.act, L.ffn_sub_norm, s.hf);
    b.project(l, s.hf, {{Op::kDownProj, L.down, s.o}});
    b.add(l, Op::kFfnResidual, s.x, s.o);
  }
  b.head(s.x);
}

}  // namespace bitnet::model
