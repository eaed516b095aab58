import Core
import Foundation
import Numerics

/// EVA02 files → canonical names (see `BackboneWeights`).
///
/// Recognised namings, with or without a `state_dict.` / `model.` / `module.` / `backbone.`
/// prefix (the official checkpoint nests its state dict under `model` or `module`; Rein's
/// converted file is flat; mmsegmentation training checkpoints hold `state_dict.backbone.*`):
///
/// | part | official EVA-02 (and Rein) | timm | canonical |
/// | --- | --- | --- | --- |
/// | q, k, v weights | `attn.qkv.weight` (T/S) or `attn.{q,k,v}_proj.weight` (B/L) | `attn.qkv.weight` or `attn.{q,k,v}_proj.weight` | `attn.qkv.weight` [3C, C] |
/// | biases | `attn.q_bias`, `attn.v_bias` | `attn.q_bias`, `attn.v_bias` or `attn.{q,v}_proj.bias` | `attn.qkv.bias` [3C], k part 0 |
/// | SwiGLU in | `mlp.w12` or `mlp.w1` (gate) + `mlp.w2` | `mlp.fc1` or `mlp.fc1_g` (gate) + `mlp.fc1_x` | `mlp.w12` [2H, C], gate first |
/// | sub-LayerNorm | `mlp.ffn_ln` | `mlp.norm` | `mlp.ffn_ln` |
/// | SwiGLU out | `mlp.w3` | `mlp.fc2` | `mlp.w3` |
///
/// Dropped as unused: `rope.*` buffers (top level and per block; the table is recomputed
/// for the model's grid), `mask_token`, `lm_head.*`, `norm.*`, `fc_norm.*`, `head.*`.
/// An attention sub-LayerNorm (`attn.inner_attn_ln`, timm `attn.norm`) is not part of the
/// EVA02 backbone Rein uses and is refused with one line.
extension BackboneWeights {
    static func canonicalEVA02(_ file: WeightFile) throws -> BackboneWeights {
        var pairs = strippedPairs(file, prefixes: ["state_dict.", "module.", "model.", "backbone."])
        let timm = pairs.contains { $0.0.contains(".mlp.fc1") || $0.0.contains(".mlp.fc2.") }
        pairs = pairs.filter { name, _, _ in
            let top = ["mask_token", "lm_head.", "norm.", "fc_norm.", "head.", "rope."]
            if top.contains(where: { name == $0 || name.hasPrefix($0) }) { return false }
            return !(name.contains(".rope.") || name.hasSuffix("freqs_cos") || name.hasSuffix("freqs_sin"))
        }
        var tensors: [String: Tensor] = [:], dtypes: [String: String] = [:]
        // Per block: the parts that are merged (q/k/v weights and biases, SwiGLU gate/value).
        var parts: [String: [String: (Tensor, String)]] = [:]
        for (raw, tensor, dtype) in pairs {
            guard raw.hasPrefix("blocks.") else {
                try insert(raw, tensor, dtype, into: &tensors, &dtypes, path: file.path)
                continue
            }
            let pieces = raw.split(separator: ".", maxSplits: 2).map(String.init)
            guard pieces.count == 3, Int(pieces[1]) != nil else {
                throw CausalTuneError("weights file \(file.path): unexpected tensor '\(raw)' \(tensor.shape) in an EVA02 file")
            }
            let block = "blocks.\(pieces[1]).", tail = pieces[2]
            if tail.hasPrefix("attn.inner_attn_ln.") || tail.hasPrefix("attn.norm.") {
                throw CausalTuneError("weights file \(file.path): '\(raw)' is an attention sub-LayerNorm, which the EVA02 backbone here does not have (use the MIM-pretrained EVA02 weights)")
            }
            let merged: [String: String] = [
                "attn.q_proj.weight": "q.weight", "attn.k_proj.weight": "k.weight", "attn.v_proj.weight": "v.weight",
                "attn.q_bias": "q.bias", "attn.k_bias": "k.bias", "attn.v_bias": "v.bias",
                "attn.q_proj.bias": "q.bias", "attn.k_proj.bias": "k.bias", "attn.v_proj.bias": "v.bias",
                "attn.qkv.bias": "qkv.bias",
                "mlp.w1.weight": "gate.weight", "mlp.w1.bias": "gate.bias", "mlp.w2.weight": "value.weight", "mlp.w2.bias": "value.bias",
                "mlp.fc1_g.weight": "gate.weight", "mlp.fc1_g.bias": "gate.bias",
                "mlp.fc1_x.weight": "value.weight", "mlp.fc1_x.bias": "value.bias",
            ]
            if let part = merged[tail] {
                if parts[block, default: [:]][part] != nil {
                    throw CausalTuneError("weights file \(file.path): tensor '\(raw)' appears twice (under two namings)")
                }
                parts[block, default: [:]][part] = (tensor, dtype)
                continue
            }
            var name = tail
            let renames = timm ? ["mlp.fc1.": "mlp.w12.", "mlp.fc2.": "mlp.w3.", "mlp.norm.": "mlp.ffn_ln."]
                               : ["mlp.norm.": "mlp.ffn_ln."]
            for (from, to) in renames where name.hasPrefix(from) { name = to + name.dropFirst(from.count) }
            try insert(block + name, tensor, dtype, into: &tensors, &dtypes, path: file.path)
        }
        for (block, p) in parts {
            // q/k/v: one [3C, C] weight (unless the file had it fused), one [3C] bias with a zero k part.
            if let q = p["q.weight"] {
                guard let k = p["k.weight"], let v = p["v.weight"] else {
                    throw CausalTuneError("weights file \(file.path): '\(block)attn' has a q projection but lacks its k or v projection")
                }
                try insert(block + "attn.qkv.weight", try stack([q.0, k.0, v.0], name: block + "attn.q/k/v_proj.weight", path: file.path),
                           q.1, into: &tensors, &dtypes, path: file.path)
            }
            if let fused = p["qkv.bias"] {
                try insert(block + "attn.qkv.bias", fused.0, fused.1, into: &tensors, &dtypes, path: file.path)
            } else if let q = p["q.bias"] {
                guard let v = p["v.bias"] else {
                    throw CausalTuneError("weights file \(file.path): '\(block)attn' has a q bias but no v bias")
                }
                guard q.0.rank == 1, v.0.shape == q.0.shape else {
                    throw CausalTuneError("weights file \(file.path): '\(block)attn' q and v biases have shapes \(q.0.shape), \(v.0.shape)")
                }
                let k = p["k.bias"]?.0 ?? Tensor(zeros: q.0.shape)
                try insert(block + "attn.qkv.bias", try stack([q.0, k, v.0], name: block + "attn.q/k/v bias", path: file.path),
                           q.1, into: &tensors, &dtypes, path: file.path)
            }
            for kind in ["weight", "bias"] {
                if let gate = p["gate.\(kind)"] {
                    guard let value = p["value.\(kind)"] else {
                        throw CausalTuneError("weights file \(file.path): '\(block)mlp' has a gate \(kind) but no value \(kind) (w2 / fc1_x)")
                    }
                    try insert(block + "mlp.w12.\(kind)", try stack([gate.0, value.0], name: block + "mlp.w1/w2.\(kind)", path: file.path),
                               gate.1, into: &tensors, &dtypes, path: file.path)
                }
            }
        }
        return BackboneWeights(path: file.path, format: file.format, tensors: tensors, dtypes: dtypes,
                               naming: timm ? "timm" : "official", family: .eva02)
    }
}
