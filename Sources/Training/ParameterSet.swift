import Numerics
import Layers

/// The trainable set of a run — Causal-Tune parameters and decode head — as ONE contiguous
/// value buffer and ONE contiguous gradient buffer.
///
///     values = [ p_0 | p_1 | … | p_{n−1} ]      (flat, Float32, P = Σ count(p_i))
///     grads  = [ g_0 | g_1 | … | g_{n−1} ]
///
/// Each parameter is a named slice (`peft/tokens`, `head/linear/weight`, … — reference §Files
/// names and PyTorch layouts), so the optimiser is one loop over `values`, the
/// data-parallel gradient average is a single all-reduce of `grads`, and a checkpoint is
/// one dataset per slice.
///
/// Modules (PEFT layer, head) keep their own parameter and gradient tensors and
/// accumulate into them in their backward passes; `gatherGradients()` copies those into
/// the flat gradient buffer and `scatterValues()` copies the flat values back after the
/// optimiser step. A module tensor that already *is* the slice (same storage and
/// offset) is skipped by both copies. The trainable set is small (a few MB, ≈ 18 MB for
/// ViT-L), so the copies cost little next to a backbone pass — but they run between
/// parallel regions, so they are split over the workers (`Kernels.copy`, `Kernels.zero`).
public final class ParameterSet {
    /// One trainable parameter.
    public struct Entry {
        /// The reference §Files name (`peft/f_t/weight`).
        public let name: String
        public let shape: [Int]
        /// Where the slice starts in the flat buffers.
        public let offset: Int
        public let count: Int
        /// Whether AdamW's decoupled weight decay applies (see `decays(name:)`).
        public let decays: Bool
        /// The slice of `values` / `grads` (views into the flat buffers).
        public let value: Tensor
        public let grad: Tensor
        /// The module's own tensors (may be the slices themselves).
        public let moduleValue: Tensor
        public let moduleGrad: Tensor
    }

    /// All parameter values, `[P]`.
    public let values: Tensor
    /// All gradients, `[P]`.
    public let grads: Tensor
    /// The parameters in buffer order.
    public let entries: [Entry]
    private let index: [String: Int]

    /// Builds the flat buffers from the modules' parameters, in the given order, copying
    /// the current module values in. Names must be unique.
    public init(_ parameters: [(name: String, value: Tensor, grad: Tensor)]) {
        var total = 0
        for p in parameters {
            precondition(p.value.shape == p.grad.shape, "parameter \(p.name): value \(p.value.shape) and gradient \(p.grad.shape) differ")
            total += p.value.count
        }
        values = Tensor(zeros: [total])
        grads = Tensor(zeros: [total])
        var entries: [Entry] = []
        var index: [String: Int] = [:]
        var offset = 0
        for p in parameters {
            precondition(index[p.name] == nil, "parameter \(p.name) appears twice")
            let n = p.value.count
            let v = values.rows(offset..<offset + n).reshaped(p.value.shape)
            let g = grads.rows(offset..<offset + n).reshaped(p.value.shape)
            v.copy(from: p.value)
            index[p.name] = entries.count
            entries.append(Entry(name: p.name, shape: p.value.shape, offset: offset, count: n,
                                 decays: ParameterSet.decays(name: p.name), value: v, grad: g,
                                 moduleValue: p.value, moduleGrad: p.grad))
            offset += n
        }
        self.entries = entries
        self.index = index
    }

    /// Builds the set from modules' named parameters (`peft/…`, `head/…`), each of which
    /// must require a gradient.
    public convenience init(_ named: [NamedParameter]) {
        self.init(named.map { p -> (name: String, value: Tensor, grad: Tensor) in
            guard let g = p.parameter.grad else { preconditionFailure("parameter \(p.name) is frozen (no gradient)") }
            return (name: p.name, value: p.parameter.value, grad: g)
        })
    }

    /// The number of scalars in the trainable set.
    public var count: Int { values.count }

    /// The parameter called `name`, if any.
    public subscript(name: String) -> Entry? { index[name].map { entries[$0] } }

    /// The names in buffer order.
    public var names: [String] { entries.map(\.name) }

    /// Weight-decay groups by reference §Training, §Files name: no decay for Causal-Tune tokens, the
    /// scale `s`, normalisation layers, biases and (for query-based heads) learned
    /// query/level embeddings; decay for every other weight. Biases are recognised in both
    /// spellings: `head/linear/bias` and the Mask2Former head's module paths
    /// (`head/….ffn.layers.0.0.bias`, `head/….attn.in_proj_bias`).
    public static func decays(name: String) -> Bool {
        let parts = name.split(separator: "/").map(String.init)
        guard let last = parts.last else { return true }
        let leaf = last.split(separator: ".").last.map(String.init) ?? last
        if leaf == "bias" || leaf.hasSuffix("_bias") { return false }
        for p in parts {
            if p.hasPrefix("tokens") || p == "scale" || p.contains("norm")
                || p.contains("query_embed") || p.contains("query_feat") || p.contains("level_embed") {
                return false
            }
        }
        return true
    }

    private static func same(_ a: Tensor, _ b: Tensor) -> Bool {
        a.storage === b.storage && a.offset == b.offset
    }

    /// Copies every module's gradient into the flat gradient buffer.
    public func gatherGradients() {
        for e in entries where !ParameterSet.same(e.grad, e.moduleGrad) { Kernels.copy(e.moduleGrad, into: e.grad) }
    }

    /// Copies the flat values back into every module's parameter tensors.
    public func scatterValues() {
        for e in entries where !ParameterSet.same(e.value, e.moduleValue) { Kernels.copy(e.value, into: e.moduleValue) }
    }

    /// Copies the module values into the flat buffer (after a module was changed directly).
    public func gatherValues() {
        for e in entries where !ParameterSet.same(e.value, e.moduleValue) { Kernels.copy(e.moduleValue, into: e.value) }
    }

    /// Zeros the module gradients and the flat gradient buffer (before a backward pass,
    /// which accumulates).
    public func zeroGradients() {
        for e in entries where !ParameterSet.same(e.grad, e.moduleGrad) { Kernels.zero(e.moduleGrad) }
        Kernels.zero(grads)
    }

    /// Whether every value of `t` is finite.
    public static func allFinite(_ t: Tensor) -> Bool {
        let p = t.data
        var ok = true
        for i in 0..<t.count where !p[i].isFinite { ok = false; break }
        return ok
    }
}
