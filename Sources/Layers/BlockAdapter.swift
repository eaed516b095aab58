import Numerics

/// A trainable module applied to the token sequence after a transformer block — the hook
/// through which PEFT methods (Causal-Tune, Rein) attach to the frozen backbone. What the
/// network and trainer need from a method beyond this hook is `PEFTAdapter` (module PEFT).
///
/// Tokens are `[B, T, C]` with `T = prefixTokens + h·w`: the cls token, then the register
/// tokens (`prefixTokens = 1 + R`), then the patch tokens row-major on the `h×w` grid.
/// The backbone calls `forward` after block `layer` and, in its backward pass, `backward`
/// for the same layer with the gradient of the adapter's output. An adapter caches, per
/// layer, what its backward needs; calling `forward` for a layer again (as the backbone's
/// recompute mode does) replaces that layer's cache.
public protocol BlockAdapter: AnyObject {
    /// Writes the adapted tokens of block `layer` into `output` (same shape as `input`).
    /// `output` may not alias `input`.
    func forward(layer: Int, input: Tensor, output: Tensor, prefixTokens: Int, grid: (h: Int, w: Int))

    /// Given `dOutput = ∂L/∂output` of the last `forward` of `layer`, *accumulates*
    /// `∂L/∂input` into `dInput` and the adapter's parameter gradients into its own
    /// gradient buffers.
    func backward(layer: Int, dOutput: Tensor, dInput: Tensor, prefixTokens: Int, grid: (h: Int, w: Int))
}
