import Core
import Foundation
import Numerics

/// DINOv2 files: official, Hugging Face and timm naming → the official names.
///
/// Canonical (official `facebookresearch/dinov2`) names: `cls_token [1,1,C]`,
/// `pos_embed [1,1+G²,C]`, `register_tokens [1,R,C]`, `mask_token [1,C]`,
/// `patch_embed.proj.{weight [C,3,p,p], bias}`, `blocks.<i>.{norm1, attn.qkv, attn.proj, ls1.gamma,
/// norm2, mlp.fc1, mlp.fc2 | mlp.w12, mlp.w3, ls2.gamma}`, `norm.{weight,bias}`.
///
/// Recognised and renamed on the way in:
/// * prefixes `module.`, `backbone.` (training checkpoints; when present, only those keys),
///   `dinov2.`, `dinov2_with_registers.` (Hugging Face task models), chunked blocks
///   `blocks.<chunk>.<i>.` (official `block_chunks > 0`);
/// * Hugging Face `Dinov2Model` / `Dinov2WithRegistersModel`: `embeddings.*`,
///   `encoder.layer.<i>.attention.attention.{query,key,value}` (concatenated into `qkv` in
///   q, k, v order), `attention.output.dense`, `layer_scale{1,2}.lambda1`, `mlp.weights_in/out`,
///   `layernorm`;
/// * timm: `reg_token`, a `pos_embed` without the cls entry (timm's reg4 models fold the
///   cls position into `cls_token`; a zero cls position reproduces that exactly), SwiGLU
///   `mlp.fc1/fc2` (recognised by `fc1` being twice as wide as `fc2`'s input).
extension BackboneWeights {
    /// Renames a DINOv2 file's tensors (official, Hugging Face or timm naming) to official names.
    static func canonicalDINOv2(_ file: WeightFile) throws -> BackboneWeights {
        var pairs: [(String, Tensor, String)] = file.names.map { ($0, file.tensors[$0]!, file.dtypes[$0] ?? "float32") }
        func strip(_ prefix: String, exclusive: Bool) {
            if pairs.contains(where: { $0.0.hasPrefix(prefix) }) {
                if exclusive { pairs = pairs.filter { $0.0.hasPrefix(prefix) } }
                pairs = pairs.map { ($0.0.hasPrefix(prefix) ? String($0.0.dropFirst(prefix.count)) : $0.0, $0.1, $0.2) }
            }
        }
        strip("module.", exclusive: false)
        strip("teacher.", exclusive: true)
        strip("backbone.", exclusive: true)
        strip("dinov2_with_registers.", exclusive: true)
        strip("dinov2.", exclusive: true)

        var tensors: [String: Tensor] = [:]
        var dtypes: [String: String] = [:]
        let isHF = pairs.contains { $0.0.hasPrefix("embeddings.") || $0.0.hasPrefix("encoder.layer.") }
        let isTimm = !isHF && pairs.contains { $0.0 == "reg_token" }
        var qkvParts: [String: [String: (Tensor, String)]] = [:]   // "blocks.i.attn.qkv.weight" → q/k/v
        for (rawName, tensor, dtype) in pairs {
            var name = rawName
            if isHF {
                guard let mapped = huggingFaceName(rawName) else {
                    throw CausalTuneError("weights file \(file.path): unexpected tensor '\(rawName)' \(tensor.shape) in a Hugging Face DINOv2 file")
                }
                if let (target, part) = qkvPart(mapped) {
                    qkvParts[target, default: [:]][part] = (tensor, dtype)
                    continue
                }
                name = mapped
            } else {
                name = unchunk(name)
                if name == "reg_token" { name = "register_tokens" }
            }
            if tensors[name] != nil {
                throw CausalTuneError("weights file \(file.path): tensor '\(name)' appears twice")
            }
            tensors[name] = tensor
            dtypes[name] = dtype
        }
        for (target, parts) in qkvParts {
            guard let q = parts["query"], let k = parts["key"], let v = parts["value"] else {
                let missing = ["query", "key", "value"].filter { parts[$0] == nil }.joined(separator: ", ")
                throw CausalTuneError("weights file \(file.path): '\(target)' is missing its \(missing) part")
            }
            guard q.0.shape == k.0.shape, q.0.shape == v.0.shape else {
                throw CausalTuneError("weights file \(file.path): query/key/value of '\(target)' differ in shape (\(q.0.shape), \(k.0.shape), \(v.0.shape))")
            }
            tensors[target] = try stack([q.0, k.0, v.0], name: target, path: file.path)
            dtypes[target] = q.1
        }
        // timm: a pos_embed without the cls entry (G² rows) gets a zero cls position.
        if let pos = tensors["pos_embed"], pos.rank == 3, isSquare(pos.shape[1]), pos.shape[1] > 1 {
            let c = pos.shape[2]
            let padded = Tensor(zeros: [1, pos.shape[1] + 1, c])
            (padded.data + c).update(from: pos.data, count: pos.count)
            tensors["pos_embed"] = padded
        }
        // timm SwiGLU: fc1 [2H, C] with fc2 [C, H].
        var i = 0
        while let fc1 = tensors["blocks.\(i).mlp.fc1.weight"] {
            if let fc2 = tensors["blocks.\(i).mlp.fc2.weight"], fc1.rank == 2, fc2.rank == 2, fc1.shape[0] == 2 * fc2.shape[1] {
                for (from, to) in [("fc1", "w12"), ("fc2", "w3")] {
                    for kind in ["weight", "bias"] {
                        let old = "blocks.\(i).mlp.\(from).\(kind)"
                        if let t = tensors.removeValue(forKey: old) {
                            tensors["blocks.\(i).mlp.\(to).\(kind)"] = t
                            dtypes["blocks.\(i).mlp.\(to).\(kind)"] = dtypes.removeValue(forKey: old)
                        }
                    }
                }
            }
            i += 1
        }
        return BackboneWeights(path: file.path, format: file.format, tensors: tensors, dtypes: dtypes,
                             naming: isHF ? "huggingface" : (isTimm ? "timm" : "official"), family: .dinov2)
    }

    /// Blocks saved in chunks: `blocks.<chunk>.<i>.rest` → `blocks.<i>.rest`.
    static func unchunk(_ name: String) -> String {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count > 3, parts[0] == "blocks", Int(parts[1]) != nil, Int(parts[2]) != nil {
            return (["blocks"] + parts[2...]).joined(separator: ".")
        }
        return name
    }

    static func huggingFaceName(_ name: String) -> String? {
        let fixed = [
            "embeddings.cls_token": "cls_token", "embeddings.mask_token": "mask_token",
            "embeddings.position_embeddings": "pos_embed", "embeddings.register_tokens": "register_tokens",
            "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
            "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
            "layernorm.weight": "norm.weight", "layernorm.bias": "norm.bias",
        ]
        if let f = fixed[name] { return f }
        let prefix = "encoder.layer."
        guard name.hasPrefix(prefix) else { return nil }
        let rest = name.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: "."), let index = Int(rest[..<dot]) else { return nil }
        let tail = String(rest[rest.index(after: dot)...])
        let map = [
            "norm1.": "norm1.", "norm2.": "norm2.",
            "attention.attention.query.": "attn.query.", "attention.attention.key.": "attn.key.",
            "attention.attention.value.": "attn.value.", "attention.output.dense.": "attn.proj.",
            "layer_scale1.lambda1": "ls1.gamma", "layer_scale2.lambda1": "ls2.gamma",
            "mlp.fc1.": "mlp.fc1.", "mlp.fc2.": "mlp.fc2.",
            "mlp.weights_in.": "mlp.w12.", "mlp.weights_out.": "mlp.w3.",
        ]
        for (from, to) in map where tail.hasPrefix(from) {
            return "blocks.\(index)." + to + tail.dropFirst(from.count)
        }
        return nil
    }

    /// `blocks.i.attn.query.weight` → (`blocks.i.attn.qkv.weight`, "query").
    static func qkvPart(_ name: String) -> (String, String)? {
        for part in ["query", "key", "value"] {
            let marker = ".attn.\(part)."
            if let r = name.range(of: marker) {
                return (name.replacingCharacters(in: r, with: ".attn.qkv."), part)
            }
        }
        return nil
    }


    /// The architecture these tensors describe (C, depth, registers, FFN kind), named when it
    /// is an official one; heads follow the official table (else C / 64).
    func inferDINOv2Architecture() throws -> BackboneArchitecture {
        guard let cls = tensors["cls_token"], cls.rank == 3 else {
            throw CausalTuneError("weights file \(path): no 'cls_token' tensor (not DINOv2 weights?)")
        }
        let c = cls.shape[2]
        var depth = 0
        while tensors["blocks.\(depth).norm1.weight"] != nil { depth += 1 }
        let registers = tensors["register_tokens"]?.shape[1] ?? 0
        let ffn: BackboneArchitecture.FeedForward
        if let w12 = tensors["blocks.0.mlp.w12.weight"] {
            ffn = .swiglu(hidden: w12.shape[0] / 2)
        } else {
            ffn = .mlp(hidden: tensors["blocks.0.mlp.fc1.weight"]?.shape[0] ?? 4 * c)
        }
        var isSwiGLU = false
        if case .swiglu = ffn { isSwiGLU = true }
        let official = BackboneArchitecture.officialName(channels: c, depth: depth, registers: registers, swiglu: isSwiGLU)
        let heads = [384: 6, 768: 12, 1024: 16, 1536: 24][c] ?? Swift.max(1, c / 64)
        guard depth > 0, c % heads == 0 else {
            throw CausalTuneError("weights file \(path): cannot infer a DINOv2 architecture (C = \(c), \(depth) blocks)")
        }
        return BackboneArchitecture(name: official ?? "custom(C=\(c),L=\(depth),R=\(registers))", channels: c, depth: depth,
                                  heads: heads, feedForward: ffn, registers: registers)
    }

}
