import Core
import Layers
import Numerics

/// A PEFT method's trainable layer set, as the network, the trainer, checkpoints and feature
/// dumps see it — they hold an `any PEFTAdapter` from `PEFTRegistry` and never the concrete
/// type, so another method is a conformer and its registry line.
///
/// The per-block `forward`/`backward` come from `BlockAdapter` (the backbone calls them); the
/// members here are called a few times per step or per run, so existential dispatch costs
/// nothing measurable. `CausalTuneAdapter` (Causal-Tune and Rein) is the conformer today.
public protocol PEFTAdapter: BlockAdapter {
    /// Every trainable parameter, with its gradient buffer, under its checkpoint name. Names
    /// start with `peft/` — the run's parameter summary and the checkpoint's `/params/peft/*`
    /// group count on it — and the order is the optimiser's and the checkpoint's, so it must
    /// not depend on anything but the options and the backbone's shape.
    var trainableParameters: [NamedParameter] { get }

    /// Copies the parameter values from `lookup(name)` (a checkpoint's `/params/<name>`, a
    /// Rein `.pth`'s tensors, …), so the file formats stay outside the method. Throws a
    /// `CausalTuneError` naming `source` and the parameter when one is missing or misshapen,
    /// and forgets whatever the layer cached from the old values.
    func loadParameters(from source: String, _ lookup: (String) throws -> Tensor?) throws

    /// Set by the network when the backbone recomputes (`model.backbone.recompute`): every
    /// layer's forward then runs again right before that layer's backward, so the method may
    /// keep one layer's backward cache instead of all of them (memory `O(1)` in the depth).
    var sharesOneCache: Bool { get set }

    /// The per-layer tokens a query-based head reads as its queries (Rein's token → query
    /// link), or nil for a method without tokens (the head then learns its own queries).
    /// Defaults to `self` when the conformer is a `PEFTTokenLink`.
    var tokenLink: (any PEFTTokenLink)? { get }
}

extension PEFTAdapter {
    public var tokenLink: (any PEFTTokenLink)? { self as? any PEFTTokenLink }

    /// The plain `loadParameters`: copies every `trainableParameters` value from `lookup`,
    /// checking names and shapes (a 1-value parameter also takes PyTorch's 0-d shape `[]`).
    /// A conformer calls it and then drops its caches.
    public func copyTrainableParameters(from source: String, _ lookup: (String) throws -> Tensor?) throws {
        for p in trainableParameters {
            let value = p.parameter.value
            guard let t = try lookup(p.name) else {
                throw CausalTuneError("\(source): missing parameter \(p.name) \(value.shape)")
            }
            guard t.shape == value.shape || (t.count == value.count && value.count == 1) else {
                throw CausalTuneError("\(source): parameter \(p.name) has shape \(t.shape), expected \(value.shape)")
            }
            value.copy(from: t)
        }
    }
}

/// An optional `PEFTAdapter` capability: tokens `[L, m, C]` (m per block) that a consumer
/// outside the blocks — the Mask2Former head's token → query link — reads before its forward
/// and sends `∂L/∂tokens` back from after its backward, so the tokens train through both paths.
public protocol PEFTTokenLink: AnyObject {
    /// `L` (the blocks), `m` (tokens per block — the head's query count), `C`.
    var linkTokenShape: (layers: Int, tokens: Int, channels: Int) { get }
    /// Writes every block's tokens into `out [L, m, C]`.
    func allTokens(into out: Tensor)
    /// Accumulates `∂L/∂tokens [L, m, C]` into the parameters' gradients.
    func accumulateAllTokensGradient(_ dTokens: Tensor)
}
