import Backbone
import Core
import Foundation
import Numerics
import RunIO

/// Checkpoints of the PyTorch world: Rein's mmseg/mmengine `.pth` files (and the same names in
/// a `.safetensors` file), read for `--init`, `evaluate`, `predict` and `features`, written by
/// `export`.
///
/// An mmseg checkpoint is `{'meta': …, 'state_dict': {…}}` (or a bare state dict). Rein's
/// backbone keeps only its PEFT module in the state dict (the frozen DINOv2 comes from the
/// config's `model.backbone.weights`), the decode head is mmdet's Mask2Former under
/// `decode_head.`. Names, ours ↔ theirs:
///
///     peft/tokens                 backbone.reins.learnable_tokens          [L, m, C]
///     peft/tokens_a, tokens_b     backbone.reins.learnable_tokens_a, _b    LoRAReins [L, m, r], [L, r, C]
///     peft/f_t/{weight,bias}      backbone.reins.mlp_token2feat.*          Linear(C, C)
///     peft/f_d/{weight,bias}      backbone.reins.mlp_delta_f.*             Linear(C, C)
///     peft/scale [1]              backbone.reins.scale                     0-d
///     head/link.transform.*       backbone.reins.transform.*               Rein's token → query link
///     head/link.merge.*           backbone.reins.merge.*
///     head/<x>                    decode_head.<x> ('/' → '.')               the head's mmdet names
///
/// Our layer with `method: rein` computes what Rein's `Reins.forward` does with these values
/// (`f_t` is `mlp_token2feat`, `f_d` is `mlp_delta_f`); with `causal_tune` the same values
/// act on the band-passed spectrum instead. Every tensor is checked by name and shape; a
/// missing, extra or misshapen one is one error line. Backbone weights a file happens to
/// carry (`backbone.blocks.*`, …) are ignored, and so is Rein's link (`transform`, `merge`,
/// always present in Rein's module) when the config's head has no queries (`linear`).
///
/// The official Causal-Tune code saves the same layout plus a second token set and MLPs
/// (`learnable_tokens2`, `mlp_token2feat2`, `mlp_delta_f2`); its layer runs the DCT over
/// each token's channel vector rather than over the patch grid of each channel, so its
/// weights belong to a different function. Such a file is refused rather than loaded.
public enum ReinCheckpoint {
    public static let peftPrefix = "backbone.reins."
    public static let headPrefix = "decode_head."

    /// The Rein / mmseg name of one of our parameter names.
    public static func reinName(for name: String) -> String {
        if name.hasPrefix("peft/") {
            let rest = String(name.dropFirst("peft/".count))
            switch rest {
            case "tokens": return peftPrefix + "learnable_tokens"
            case "tokens_a": return peftPrefix + "learnable_tokens_a"
            case "tokens_b": return peftPrefix + "learnable_tokens_b"
            case "scale": return peftPrefix + "scale"
            default: break
            }
            if rest.hasPrefix("f_t/") { return peftPrefix + "mlp_token2feat." + rest.dropFirst(4).replacingOccurrences(of: "/", with: ".") }
            if rest.hasPrefix("f_d/") { return peftPrefix + "mlp_delta_f." + rest.dropFirst(4).replacingOccurrences(of: "/", with: ".") }
            return peftPrefix + rest.replacingOccurrences(of: "/", with: ".")
        }
        if name.hasPrefix("head/link.") { return peftPrefix + name.dropFirst("head/link.".count) }
        if name.hasPrefix("head/") { return headPrefix + name.dropFirst("head/".count).replacingOccurrences(of: "/", with: ".") }
        return name.replacingOccurrences(of: "/", with: ".")
    }

    /// The shape Rein's module has for one of our parameters (`scale` is a 0-d tensor there).
    public static func reinShape(for name: String, shape: [Int]) -> [Int] {
        name == "peft/scale" && shape.reduce(1, *) == 1 ? [] : shape
    }

    /// Whether `path` is a PyTorch or safetensors file (read here) rather than our HDF5
    /// checkpoint. A file that cannot be opened is left to the HDF5 reader's error.
    public static func handles(_ path: String) -> Bool {
        guard let f = try? WeightFile.detectFormat(path) else { return false }
        return f != .hdf5
    }

    /// Reads a Rein / mmseg checkpoint and returns, for each of `expected` (our names and
    /// shapes), its tensor. With `partial` (features: the PEFT set only), tensors of the file
    /// without a counterpart among `expected` are left alone; otherwise they are an error.
    public static func read(_ path: String, expected: [(name: String, shape: [Int])], partial: Bool = false) throws -> [String: Tensor] {
        let file = try WeightFile.read(path)
        // A DataParallel wrapper's prefix.
        var tensors: [String: Tensor] = [:]
        var names: [String] = []
        let strip = !file.names.isEmpty && file.names.allSatisfy { $0.hasPrefix("module.") }
        for n in file.names {
            let k = strip ? String(n.dropFirst("module.".count)) : n
            tensors[k] = file.tensors[n]; names.append(k)
        }
        if let second = names.first(where: { isOfficialCausalTune($0) }) {
            throw CausalTuneError("\(path): a checkpoint of the official Causal-Tune code ('\(second)'): its layer applies the DCT across each token's channels, ours across each channel's patch grid, so these weights compute a different function here — not loaded")
        }
        let ours = names.filter { $0.hasPrefix(peftPrefix) || $0.hasPrefix(headPrefix) }
        guard !ours.isEmpty else {
            let sample = names.prefix(3).map { "'\($0)'" }.joined(separator: ", ")
            throw CausalTuneError("\(path): not a Rein / mmseg segmentation checkpoint (no \(peftPrefix)* or \(headPrefix)* tensors\(names.isEmpty ? "" : "; it holds \(sample)…"))")
        }
        let byRein = Dictionary(expected.map { (reinName(for: $0.name), $0) }, uniquingKeysWith: { a, _ in a })
        // Full vs LoRA tokens: say which setting the file needs.
        let fileLoRA = tensors[peftPrefix + "learnable_tokens_a"]
        let wantLoRA = expected.contains { $0.name == "peft/tokens_a" }
        let wantFull = expected.contains { $0.name == "peft/tokens" }
        if let a = fileLoRA, a.shape.count == 3, wantFull {
            throw CausalTuneError("\(path): holds LoRA tokens (\(peftPrefix)learnable_tokens_a \(a.shape)) but the config has full tokens — set model.peft.lora_rank: \(a.shape[2])")
        }
        if let t = tensors[peftPrefix + "learnable_tokens"], wantLoRA {
            throw CausalTuneError("\(path): holds full tokens (\(peftPrefix)learnable_tokens \(t.shape)) but the config has model.peft.lora_rank set — set it to null")
        }
        // Rein's module always holds its token → query link (transform, merge); a model
        // without a query head (linear head) has no use for it.
        let hasLink = expected.contains { $0.name.hasPrefix("head/link.") }
        let unused = { (n: String) in !hasLink && (n.hasPrefix(peftPrefix + "transform.") || n.hasPrefix(peftPrefix + "merge.")) }
        if !partial, let extra = ours.first(where: { byRein[$0] == nil && !unused($0) }) {
            throw CausalTuneError("\(path): tensor '\(extra)' \(tensors[extra]!.shape) has no counterpart in the model of this config (model.peft / model.head differ from the checkpoint's?)")
        }
        var out: [String: Tensor] = [:]
        for e in expected {
            let r = reinName(for: e.name)
            guard let t = tensors[r] else {
                throw CausalTuneError("\(path): tensor '\(r)' (our \(e.name) \(e.shape)) is missing — checkpoint written for another model?")
            }
            let count = e.shape.reduce(1, *)
            guard t.shape == e.shape || (t.count == count && t.shape.filter({ $0 != 1 }) == e.shape.filter({ $0 != 1 })) else {
                throw CausalTuneError("\(path): tensor '\(r)' has shape \(t.shape), this config's \(e.name) is \(e.shape)")
            }
            out[e.name] = t.shape == e.shape ? t : t.reshaped(e.shape)
        }
        return out
    }

    /// Names of the official Causal-Tune code's second token set / MLPs.
    static func isOfficialCausalTune(_ name: String) -> Bool {
        let leaf = name.split(separator: ".").map(String.init)
        return leaf.contains { $0 == "learnable_tokens2" || $0.hasPrefix("learnable_tokens2_") || $0 == "mlp_token2feat2" || $0 == "mlp_delta_f2" }
    }

    /// Loads every parameter of `set` from a Rein / mmseg checkpoint and pushes the values
    /// into the modules. `method` is the config's `model.peft.method`: for anything but
    /// `rein` a note says that the imported values drive our layer variant.
    public static func load(_ path: String, into set: ParameterSet, method: String, log: RunLog) throws {
        let values = try read(path, expected: set.entries.map { ($0.name, $0.shape) })
        for e in set.entries { e.value.data.update(from: values[e.name]!.data, count: e.count) }
        set.scatterValues()
        if method != "rein" && set.names.contains(where: { $0.hasPrefix("peft/") }) {
            log.info("note: \(path) is read as a Rein checkpoint; with model.peft.method \(method) its PEFT values drive that layer, not Rein's")
        }
    }

    /// Loads the trainable parameters of `set` from `path`, whatever it is: our HDF5
    /// checkpoint (signature checked against `signature`) or a Rein / mmseg one. Returns a
    /// short description for the log (`step 4000`, `Rein / mmseg checkpoint`).
    @discardableResult
    public static func loadAny(_ path: String, into set: ParameterSet, signature: ModelSignature, method: String,
                               log: RunLog) throws -> String {
        if handles(path) {
            try load(path, into: set, method: method, log: log)
            return "Rein / mmseg checkpoint"
        }
        let reader = try Checkpoint.Reader(path: path)
        try reader.requireCompatible(with: signature)
        try reader.loadParameters(into: set)
        return "step \(reader.metadata.step)"
    }
}
