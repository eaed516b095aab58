import Core
import Foundation
import Numerics

/// CLIP visual-tower files → canonical names (see `BackboneWeights`), which are timm's
/// `vit_*_clip_*` names.
///
/// | part | OpenAI / open_clip (`visual.`) | Hugging Face (`vision_model.` or bare) | canonical |
/// | --- | --- | --- | --- |
/// | class token | `class_embedding` [C] | `embeddings.class_embedding` [C] | `cls_token` [1, 1, C] |
/// | positions | `positional_embedding` [1+G², C] | `embeddings.position_embedding.weight` | `pos_embed` [1, 1+G², C] |
/// | patch conv | `conv1.weight` | `embeddings.patch_embedding.weight` | `patch_embed.proj.weight` |
/// | `ln_pre` | `ln_pre.*` | `pre_layrnorm.*` | `norm_pre.*` |
/// | block norms | `transformer.resblocks.i.ln_1`, `ln_2` | `encoder.layers.i.layer_norm1`, `layer_norm2` | `blocks.i.norm1`, `norm2` |
/// | attention | `attn.in_proj_weight/bias`, `attn.out_proj.*` | `self_attn.{q,k,v}_proj.*` (fused q, k, v), `self_attn.out_proj.*` | `attn.qkv.*`, `attn.proj.*` |
/// | MLP | `mlp.c_fc.*`, `mlp.c_proj.*` | `mlp.fc1.*`, `mlp.fc2.*` | `mlp.fc1.*`, `mlp.fc2.*` |
///
/// The text tower (OpenAI's unprefixed keys, Hugging Face's `text_model.*`), the final
/// `ln_post` / `post_layernorm`, `proj` / `visual_projection`, `logit_scale` and timm's
/// `norm` / `head` are dropped.
extension BackboneWeights {
    static func canonicalCLIP(_ file: WeightFile) throws -> BackboneWeights {
        var pairs = strippedPairs(file, prefixes: ["module.", "state_dict.", "backbone."])
        let naming: String
        if pairs.contains(where: { $0.0.hasPrefix("visual.") }) {
            naming = "openai"
            pairs = pairs.filter { $0.0.hasPrefix("visual.") }.map { (String($0.0.dropFirst(7)), $0.1, $0.2) }
        } else if pairs.contains(where: { $0.0.hasPrefix("vision_model.") }) {
            naming = "huggingface"
            pairs = pairs.filter { $0.0.hasPrefix("vision_model.") }.map { (String($0.0.dropFirst(13)), $0.1, $0.2) }
        } else if pairs.contains(where: { $0.0.hasPrefix("embeddings.") || $0.0.hasPrefix("encoder.layers.") }) {
            naming = "huggingface"
        } else if pairs.contains(where: { $0.0 == "conv1.weight" || $0.0 == "class_embedding" }) {
            naming = "openai"
        } else {
            naming = "timm"
        }
        var tensors: [String: Tensor] = [:], dtypes: [String: String] = [:]
        var qkv: [String: [String: (Tensor, String)]] = [:]
        for (raw, tensor, dtype) in pairs {
            guard let name = try clipName(raw, naming: naming, path: file.path, shape: tensor.shape) else { continue }
            var t = tensor
            switch name {
            case "cls_token" where t.rank == 1: t = t.reshaped([1, 1, t.count])
            case "pos_embed" where t.rank == 2: t = t.reshaped([1] + t.shape)
            default: break
            }
            if let r = name.range(of: ".attn.qkv_part.") {
                let part = String(name[r.upperBound...])   // "q.weight", "k.bias", …
                qkv[String(name[..<r.lowerBound]), default: [:]][part] = (t, dtype)
                continue
            }
            try insert(name, t, dtype, into: &tensors, &dtypes, path: file.path)
        }
        for (block, p) in qkv {
            for kind in ["weight", "bias"] {
                let found = ["q", "k", "v"].compactMap { p["\($0).\(kind)"] }
                if found.isEmpty { continue }
                guard found.count == 3 else {
                    throw CausalTuneError("weights file \(file.path): '\(block).self_attn' lacks some of its q/k/v \(kind)s")
                }
                try insert(block + ".attn.qkv.\(kind)", try stack(found.map(\.0), name: block + ".self_attn.q/k/v_proj.\(kind)", path: file.path),
                           found[0].1, into: &tensors, &dtypes, path: file.path)
            }
        }
        return BackboneWeights(path: file.path, format: file.format, tensors: tensors, dtypes: dtypes, naming: naming, family: .clip)
    }

    /// The canonical name of a CLIP tensor, nil for one that is dropped; Hugging Face q/k/v
    /// parts come back as `blocks.i.attn.qkv_part.<q|k|v>.<weight|bias>`.
    private static func clipName(_ raw: String, naming: String, path: String, shape: [Int]) throws -> String? {
        let unexpected = CausalTuneError("weights file \(path): unexpected tensor '\(raw)' \(shape) in a CLIP file (\(naming) naming)")
        switch naming {
        case "openai":
            let fixed = ["class_embedding": "cls_token", "positional_embedding": "pos_embed", "conv1.weight": "patch_embed.proj.weight",
                         "ln_pre.weight": "norm_pre.weight", "ln_pre.bias": "norm_pre.bias"]
            if let f = fixed[raw] { return f }
            if raw.hasPrefix("ln_post.") || raw == "proj" { return nil }
            guard let (i, tail) = blockTail(raw, prefix: "transformer.resblocks.") else { throw unexpected }
            let map = ["ln_1.": "norm1.", "ln_2.": "norm2.", "attn.in_proj_weight": "attn.qkv.weight", "attn.in_proj_bias": "attn.qkv.bias",
                       "attn.out_proj.": "attn.proj.", "mlp.c_fc.": "mlp.fc1.", "mlp.c_proj.": "mlp.fc2."]
            for (from, to) in map where tail.hasPrefix(from) { return "blocks.\(i)." + to + tail.dropFirst(from.count) }
            throw unexpected
        case "huggingface":
            let fixed = ["embeddings.class_embedding": "cls_token", "embeddings.position_embedding.weight": "pos_embed",
                         "embeddings.patch_embedding.weight": "patch_embed.proj.weight",
                         "pre_layrnorm.weight": "norm_pre.weight", "pre_layrnorm.bias": "norm_pre.bias",
                         "pre_layernorm.weight": "norm_pre.weight", "pre_layernorm.bias": "norm_pre.bias"]
            if let f = fixed[raw] { return f }
            let dropped = ["embeddings.position_ids", "post_layernorm.", "text_model.", "visual_projection.", "text_projection.", "logit_scale"]
            if dropped.contains(where: { raw.hasPrefix($0) }) { return nil }
            guard let (i, tail) = blockTail(raw, prefix: "encoder.layers.") else { throw unexpected }
            for part in ["q", "k", "v"] where tail.hasPrefix("self_attn.\(part)_proj.") {
                return "blocks.\(i).attn.qkv_part.\(part)." + tail.dropFirst("self_attn.\(part)_proj.".count)
            }
            let map = ["layer_norm1.": "norm1.", "layer_norm2.": "norm2.", "self_attn.out_proj.": "attn.proj.",
                       "mlp.fc1.": "mlp.fc1.", "mlp.fc2.": "mlp.fc2."]
            for (from, to) in map where tail.hasPrefix(from) { return "blocks.\(i)." + to + tail.dropFirst(from.count) }
            throw unexpected
        default:
            if raw.hasPrefix("norm.") || raw.hasPrefix("head.") || raw.hasPrefix("fc_norm.") { return nil }
            return raw
        }
    }

    /// `<prefix><i>.<tail>` → (i, tail).
    private static func blockTail(_ name: String, prefix: String) -> (Int, String)? {
        guard name.hasPrefix(prefix) else { return nil }
        let rest = name.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: "."), let i = Int(rest[..<dot]) else { return nil }
        return (i, String(rest[rest.index(after: dot)...]))
    }
}
