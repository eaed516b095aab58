import Numerics

/// A layer whose input goes through one `Linear` first — attention's `qkv`, the MLP's `fc1`,
/// SwiGLU's `w12` — so that every backward ends the same way: the gradient at that
/// projection's output, then the projection's own backward. The three backward entry points
/// are written once here; a conformer supplies the part before the projection.
public protocol InputProjectedLayer: Layer {
    /// The first product, the one that reads the layer's input.
    var inputProjection: Linear { get }
    /// Only `backwardInput` will follow (frozen weights), so the forward kept less.
    var inputGradientsOnly: Bool { get }
    /// ∂L/∂(`inputProjection`'s output) for `dOutput` of the last forward on `input`, with the
    /// other parameters' gradients accumulated unless `frozen`. Returns a work buffer of the
    /// layer's, valid until its next call.
    func projectionOutputGradient(dOutput: Tensor, input: Tensor, frozen: Bool) -> Tensor
}

extension InputProjectedLayer {
    /// Full backward (after `forward` on the same `input`): accumulates dx (when given) and
    /// the gradients of the parameters that require one.
    public func backward(dOutput: Tensor, input: Tensor, dInput: Tensor?) {
        precondition(!inputGradientsOnly, "\(Self.self): full backward of a layer set to inputGradientsOnly")
        let g = projectionOutputGradient(dOutput: dOutput, input: input, frozen: false)
        inputProjection.backward(dOutput: g, input: input, dInput: dInput)
    }

    /// Frozen backward: accumulates only dx.
    public func backwardInput(dOutput: Tensor, input: Tensor, dInput: Tensor) {
        backwardInput(dOutput: dOutput, input: input, dInput: dInput, accumulate: true)
    }

    /// Frozen backward that accumulates dx or, with `accumulate: false`, writes it (no
    /// zeroing pass for a caller whose buffer holds nothing yet).
    public func backwardInput(dOutput: Tensor, input: Tensor, dInput: Tensor, accumulate: Bool) {
        precondition(dInput.count == input.count, "\(Self.self): dInput \(dInput.shape) for input \(input.shape)")
        let g = projectionOutputGradient(dOutput: dOutput, input: input, frozen: true)
        inputProjection.inputGradient(dOutput: g, into: dInput, accumulate: accumulate)
    }
}
