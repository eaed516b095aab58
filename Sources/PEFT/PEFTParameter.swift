import Numerics

/// A trainable tensor with its gradient buffer and checkpoint name (SPEC §7).
///
/// `value` and `gradient` refer to the module's own storage: the trainer reads and writes
/// them in place (e.g. packing every gradient into one flat buffer for the all-reduce and
/// copying the averaged result back), and checkpoints use `name` as the `/params/<name>`
/// dataset path. `weightDecay` is false for tokens, the scale and biases (SPEC §6).
public struct PEFTParameter {
    public let name: String
    public let value: Tensor
    public let gradient: Tensor
    public let weightDecay: Bool

    public init(name: String, value: Tensor, gradient: Tensor, weightDecay: Bool) {
        precondition(value.shape == gradient.shape, "parameter \(name): value \(value.shape) vs gradient \(gradient.shape)")
        self.name = name
        self.value = value
        self.gradient = gradient
        self.weightDecay = weightDecay
    }
}
