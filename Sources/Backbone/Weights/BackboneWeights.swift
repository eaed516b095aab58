import Core
import Foundation
import Numerics

/// A backbone's weights under our canonical names, whatever file and naming they came from.
///
/// Canonical names are DINOv2's official ones (`cls_token [1,1,C]`, `pos_embed [1,1+G²,C]`,
/// `patch_embed.proj.*`, `blocks.<i>.{norm1, attn.qkv, attn.proj, norm2, mlp.*}`), extended
/// per family:
/// * DINOv2: `register_tokens`, `blocks.<i>.ls{1,2}.gamma`, `mlp.fc1/fc2` or `mlp.w12/w3`
///   (`DINOv2Weights.swift`);
/// * EVA02: `attn.qkv.bias` holds q, k (zero) and v biases, `mlp.w12` the gate rows first,
///   `mlp.ffn_ln` the sub-LayerNorm when the file has one, `mlp.w3` (`EVA02Weights.swift`);
/// * CLIP: `norm_pre.*` (`ln_pre`), no `patch_embed.proj.bias` (`CLIPWeights.swift`).
///
/// Which family a file holds is recognised from its tensor names.
public struct BackboneWeights {
    public let path: String
    public let format: WeightFile.Format
    /// Canonical names → float32 tensors.
    public var tensors: [String: Tensor]
    /// Canonical names → dtype in the file (for merged tensors, the first part's).
    public var dtypes: [String: String]
    /// Which naming the file used: "official", "huggingface", "timm", "openai".
    public let naming: String
    /// The family the tensors belong to.
    public let family: BackboneArchitecture.Family
    // Built only by this module's readers, through the memberwise initialiser.

    /// Reads `path` (any supported format) and renames to canonical names.
    public static func read(_ path: String) throws -> BackboneWeights {
        try canonical(WeightFile.read(path))
    }

    /// Recognises the family from the names and renames.
    public static func canonical(_ file: WeightFile) throws -> BackboneWeights {
        switch detectFamily(file.names) {
        case .dinov2: return try canonicalDINOv2(file)
        case .eva02: return try canonicalEVA02(file)
        case .clip: return try canonicalCLIP(file)
        }
    }

    /// The family whose naming `names` use: CLIP's embedding names (any of its namings),
    /// EVA02's q/v biases, split gate or sub-LayerNorm, or SwiGLU blocks without LayerScale;
    /// DINOv2 otherwise.
    public static func detectFamily(_ names: [String]) -> BackboneArchitecture.Family {
        let clipMarkers = ["class_embedding", "conv1.weight", "ln_pre.weight", "pre_layrnorm.weight",
                           "pre_layernorm.weight", "norm_pre.weight"]
        if names.contains(where: { name in clipMarkers.contains { name == $0 || name.hasSuffix("." + $0) } }) {
            return .clip
        }
        let evaMarkers = [".attn.q_bias", ".attn.v_bias", ".attn.q_proj.", ".mlp.fc1_g.", ".mlp.w1.", ".mlp.ffn_ln.",
                          ".attn.rope.", ".mlp.fc1_x."]
        if names.contains(where: { name in evaMarkers.contains { name.contains($0) } }) { return .eva02 }
        let hasBlocks = names.contains { $0.contains("blocks.0.") }
        let hasLayerScale = names.contains { $0.contains(".ls1.") || $0.contains("layer_scale1") }
        if hasBlocks && !hasLayerScale && names.contains(where: { $0.contains("blocks.0.mlp.") }) {
            let dinoHF = names.contains { $0.hasPrefix("embeddings.") || $0.contains("encoder.layer.") }
            if !dinoHF { return .eva02 }
        }
        return .dinov2
    }

    /// The architecture these tensors describe, named when it is an official one.
    public func inferArchitecture() throws -> BackboneArchitecture {
        switch family {
        case .dinov2: return try inferDINOv2Architecture()
        case .eva02, .clip: return try inferFamilyArchitecture()
        }
    }

    /// EVA02 or CLIP: C from the cls token, depth from the blocks, heads from the released
    /// table (else C / 64), the FFN from the first block.
    private func inferFamilyArchitecture() throws -> BackboneArchitecture {
        guard let cls = tensors["cls_token"], cls.rank == 3 else {
            throw CausalTuneError("weights file \(path): no cls token (not \(family.rawValue) weights?)")
        }
        let c = cls.shape[2]
        var depth = 0
        while tensors["blocks.\(depth).norm1.weight"] != nil { depth += 1 }
        let heads = [192: 3, 384: 6, 768: 12, 1024: 16][c] ?? Swift.max(1, c / 64)
        guard depth > 0, c % heads == 0 else {
            throw CausalTuneError("weights file \(path): cannot infer a \(family.rawValue) architecture (C = \(c), \(depth) blocks)")
        }
        let official: [String]
        let ffn: BackboneArchitecture.FeedForward
        var patch = 14
        if family == .eva02 {
            let hidden = (tensors["blocks.0.mlp.w12.weight"]?.shape.first).map { $0 / 2 } ?? BackboneArchitecture.eva02Hidden(c)
            ffn = .swiglu(hidden: hidden, subNorm: tensors["blocks.0.mlp.ffn_ln.weight"] != nil)
            official = ["eva02_vitt14", "eva02_vits14", "eva02_vitb14", "eva02_vitl14"]
        } else {
            ffn = .mlp(hidden: tensors["blocks.0.mlp.fc1.weight"]?.shape.first ?? 4 * c, activation: .quickGELU)
            official = ["clip_vitb16", "clip_vitl14"]
            patch = patchSize ?? 14
        }
        for name in official {
            let a = try BackboneArchitecture.named(name, eva02SubNorm: family == .eva02 ? ffn == .swiglu(hidden: ffn.hidden, subNorm: true) : nil)
            if a.channels == c && a.depth == depth && a.feedForward == ffn && (family != .clip || a.nativePatchSize == patch) {
                return a
            }
        }
        return BackboneArchitecture(name: "custom_\(family.rawValue)(C=\(c),L=\(depth))", family: family, channels: c, depth: depth,
                                    heads: heads, feedForward: ffn, registers: 0, nativePatchSize: patch)
    }

    /// The checkpoint's patch size and position-embedding grid side.
    public var patchSize: Int? { tensors["patch_embed.proj.weight"].flatMap { $0.rank == 4 ? $0.shape[3] : nil } }
    public var positionGrid: Int? {
        tensors["pos_embed"].flatMap { $0.rank == 3 && BackboneWeights.isSquare($0.shape[1] - 1) ? Int(Double($0.shape[1] - 1).squareRoot().rounded()) : nil }
    }


    /// The canonical tensors of `arch` whose shape does not depend on the grid or the patch
    /// size, in model order.
    public static func fixedShapes(for arch: BackboneArchitecture) -> [(String, [Int])] {
        let c = arch.channels
        var expected: [(String, [Int])] = [("cls_token", [1, 1, c])]
        if arch.registers > 0 { expected.append(("register_tokens", [1, arch.registers, c])) }
        if arch.hasPatchBias { expected.append(("patch_embed.proj.bias", [c])) }
        if arch.hasPreNorm { expected += [("norm_pre.weight", [c]), ("norm_pre.bias", [c])] }
        for i in 0..<arch.depth {
            let p = "blocks.\(i)."
            expected += [
                (p + "norm1.weight", [c]), (p + "norm1.bias", [c]),
                (p + "attn.qkv.weight", [3 * c, c]), (p + "attn.qkv.bias", [3 * c]),
                (p + "attn.proj.weight", [c, c]), (p + "attn.proj.bias", [c]),
                (p + "norm2.weight", [c]), (p + "norm2.bias", [c]),
            ]
            if arch.hasLayerScale { expected += [(p + "ls1.gamma", [c]), (p + "ls2.gamma", [c])] }
            switch arch.feedForward {
            case .mlp(let h, _):
                expected += [(p + "mlp.fc1.weight", [h, c]), (p + "mlp.fc1.bias", [h]),
                             (p + "mlp.fc2.weight", [c, h]), (p + "mlp.fc2.bias", [c])]
            case .swiglu(let h, let subNorm):
                expected += [(p + "mlp.w12.weight", [2 * h, c]), (p + "mlp.w12.bias", [2 * h]),
                             (p + "mlp.w3.weight", [c, h]), (p + "mlp.w3.bias", [c])]
                if subNorm { expected += [(p + "mlp.ffn_ln.weight", [h]), (p + "mlp.ffn_ln.bias", [h])] }
            }
        }
        return expected
    }

    /// Checks that the tensors are exactly those `arch` needs: every required tensor present
    /// with its shape (the position grid and patch size may be any; they are resampled), no
    /// unknown tensor. DINOv2's `mask_token` and final `norm` are accepted and unused (the
    /// other families' readers drop what they do not use).
    public func validate(for arch: BackboneArchitecture) throws {
        let c = arch.channels
        let expected = BackboneWeights.fixedShapes(for: arch)
        let optional: [String: [Int]] = arch.family == .dinov2 ? ["mask_token": [1, c], "norm.weight": [c], "norm.bias": [c]] : [:]
        for (name, shape) in expected {
            guard let t = tensors[name] else {
                throw CausalTuneError("weights file \(path): missing tensor '\(name)' (\(arch.name) expects shape \(shape))")
            }
            if t.shape != shape {
                throw CausalTuneError("weights file \(path): tensor '\(name)' has shape \(t.shape), \(arch.name) expects \(shape)")
            }
        }
        // Grid-dependent shapes.
        guard let pos = tensors["pos_embed"] else {
            throw CausalTuneError("weights file \(path): missing tensor 'pos_embed' (\(arch.name) expects shape [1, 1 + G², \(c)])")
        }
        if pos.rank != 3 || pos.shape[0] != 1 || pos.shape[2] != c || !BackboneWeights.isSquare(pos.shape[1] - 1) {
            throw CausalTuneError("weights file \(path): tensor 'pos_embed' has shape \(pos.shape), \(arch.name) expects [1, 1 + G², \(c)]")
        }
        guard let kernel = tensors["patch_embed.proj.weight"] else {
            throw CausalTuneError("weights file \(path): missing tensor 'patch_embed.proj.weight' (\(arch.name) expects shape [\(c), 3, p, p])")
        }
        if kernel.rank != 4 || kernel.shape[0] != c || kernel.shape[1] != 3 || kernel.shape[2] != kernel.shape[3] {
            throw CausalTuneError("weights file \(path): tensor 'patch_embed.proj.weight' has shape \(kernel.shape), \(arch.name) expects [\(c), 3, p, p]")
        }
        let known = Set(expected.map(\.0) + ["pos_embed", "patch_embed.proj.weight"])
        for name in tensors.keys.sorted() where !known.contains(name) {
            if let shape = optional[name] {
                if tensors[name]!.shape != shape {
                    throw CausalTuneError("weights file \(path): tensor '\(name)' has shape \(tensors[name]!.shape), \(arch.name) expects \(shape)")
                }
                continue
            }
            throw CausalTuneError("weights file \(path): unexpected tensor '\(name)' \(tensors[name]!.shape) for \(arch.name)")
        }
    }

    static func isSquare(_ n: Int) -> Bool {
        guard n >= 0 else { return false }
        let r = Int(Double(n).squareRoot().rounded())
        return r * r == n
    }

    /// Reads `path` for `arch`: tensors with a fixed shape in the architecture (under their
    /// canonical names, bare or with a `backbone.` / `module.` / `teacher.` prefix) must have
    /// it, and no tensor may exceed the architecture's largest plausible tensor — both
    /// checked before the tensor is read, so a foreign or crafted file cannot make us
    /// allocate more than the model itself needs. The file must hold `arch`'s family.
    public static func read(_ path: String, for arch: BackboneArchitecture) throws -> BackboneWeights {
        let weights = try canonical(WeightFile.read(path, expecting: expectations(for: arch)))
        guard weights.family == arch.family else {
            throw CausalTuneError("weights file \(path): holds \(weights.family.rawValue) weights (\(weights.naming) naming), but model.backbone.arch is \(arch.name)")
        }
        return weights
    }

    /// The shapes of `arch` that do not depend on the grid or patch size, and an element
    /// bound: the largest of those, a position embedding of up to a 128 × 128 grid, and a
    /// patch kernel of up to 64 × 64. (An EVA02 file's separate gate and value halves are
    /// each smaller than the stacked `w12`.)
    public static func expectations(for arch: BackboneArchitecture) -> WeightExpectations {
        let c = arch.channels
        var fixed: [String: [Int]] = [:]
        for (n, s) in fixedShapes(for: arch) { fixed[n] = s }
        if arch.family == .dinov2 {
            fixed["norm.weight"] = [c]
            fixed["norm.bias"] = [c]
            fixed["mask_token"] = [1, c]
        }
        var shapes = fixed
        for prefix in ["backbone.", "module.", "teacher.", "module.backbone.", "teacher.backbone."] {
            for (n, s) in fixed { shapes[prefix + n] = s }
        }
        let largestFixed = fixed.values.map { $0.reduce(1, *) }.max() ?? 0
        let bound = max(largestFixed, c * (1 + 128 * 128), c * 3 * 64 * 64)
        return WeightExpectations(shapes: shapes, maxElements: bound, consumer: arch.name)
    }
}

/// Helpers the family readers share.
extension BackboneWeights {
    /// The file's (name, tensor, dtype) triples with the first matching wrapper prefix
    /// removed (only the keys under it are kept: a training checkpoint also holds a head).
    static func strippedPairs(_ file: WeightFile, prefixes: [String]) -> [(String, Tensor, String)] {
        var pairs: [(String, Tensor, String)] = file.names.map { ($0, file.tensors[$0]!, file.dtypes[$0] ?? "float32") }
        for prefix in prefixes where pairs.contains(where: { $0.0.hasPrefix(prefix) }) {
            pairs = pairs.filter { $0.0.hasPrefix(prefix) }.map { (String($0.0.dropFirst(prefix.count)), $0.1, $0.2) }
        }
        return pairs
    }

    static func insert(_ name: String, _ tensor: Tensor, _ dtype: String, into tensors: inout [String: Tensor],
                       _ dtypes: inout [String: String], path: String) throws {
        if tensors[name] != nil {
            throw CausalTuneError("weights file \(path): tensor '\(name)' appears twice (under two namings)")
        }
        tensors[name] = tensor
        dtypes[name] = dtype
    }

    /// Concatenates tensors along their first dimension (all other dimensions equal).
    static func stack(_ parts: [Tensor], name: String, path: String) throws -> Tensor {
        let rest = Array(parts[0].shape.dropFirst())
        guard parts[0].rank >= 1, parts.allSatisfy({ $0.rank == parts[0].rank && Array($0.shape.dropFirst()) == rest }) else {
            throw CausalTuneError("weights file \(path): the parts of '\(name)' have shapes \(parts.map(\.shape)), which do not stack")
        }
        let out = Tensor(zeros: [parts.reduce(0) { $0 + $1.shape[0] }] + rest)
        var offset = 0
        for p in parts {
            (out.data + offset).update(from: p.data, count: p.count)
            offset += p.count
        }
        return out
    }
}
