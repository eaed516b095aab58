import Numerics

/// The contract of a one-input, one-output layer. Forward passes write into memory the caller
/// owns (so a step can run on buffers allocated once); backward passes *accumulate* into
/// `dInput`, so a tensor feeding several branches collects their gradients without a sum:
///
///     forward(x, into: y)                       y = f(x); keeps what backward reads
///     backward(dOutput:input:dInput:)           dx += ∂f/∂x · dy (dx optional), parameter gradients +=
///     backwardInput(dOutput:input:dInput:)      dx += ∂f/∂x · dy only (frozen weights: no weight-gradient work)
///     layer(x)                                  allocating form, for tests and one-off calls
///
/// Hot paths call the concrete (final) types, so conformance adds no dynamic dispatch there;
/// the protocol serves generic code and gives every layer the same allocating call.
/// Layers whose signature is genuinely different do not conform: PatchEmbed (its backward
/// needs no input), the heads' attentions (query, key and value inputs) and the
/// Mask2Former encoder and decoder layers (positions, reference points, memory).
public protocol Layer: Module {
    /// input → output (written; the caller's buffer of `outputShape(for: input.shape)`).
    func forward(_ input: Tensor, into output: Tensor)
    /// Full backward of the last forward on `input`.
    func backward(dOutput: Tensor, input: Tensor, dInput: Tensor?)
    /// Frozen backward of the last forward on `input`.
    func backwardInput(dOutput: Tensor, input: Tensor, dInput: Tensor)
    /// The output's shape for an input of `inputShape` (default: the same shape).
    func outputShape(for inputShape: [Int]) -> [Int]
}

extension Layer {
    public func outputShape(for inputShape: [Int]) -> [Int] { inputShape }

    /// The rows of `input` `[..., channels]` read as a matrix, once `output` is checked to
    /// hold as many values: how every shape-preserving forward starts.
    @inline(__always)
    func rows(of input: Tensor, channels: Int, writing output: Tensor) -> Int {
        precondition(output.count == input.count, "\(Self.self): output \(output.shape) for input \(input.shape)")
        return rowCount(input, channels)
    }

    /// Allocating form of `forward`.
    public func callAsFunction(_ input: Tensor) -> Tensor {
        let out = Tensor(zeros: outputShape(for: input.shape))
        forward(input, into: out)
        return out
    }
}
