/// The namespace of our element-wise, reduction and activation kernels.
///
/// Kernels work on raw `UnsafeMutablePointer<Float>` buffers with explicit sizes (llm.c
/// style) so that layers can point them into preallocated activation arenas; most also
/// have a `Tensor` convenience form. Loops over rows are split across cores with
/// `Parallel.forEach`. Conventions:
/// * forward kernels *write* their outputs;
/// * backward kernels *accumulate* (`+=`) into input gradients, so a residual branch is two
///   backward calls into one buffer — exactly as the layers do;
/// * reductions accumulate in `Double`.
public enum Kernels {
    /// Elements per chunk below which a loop is not worth a thread hop.
    public static let elementGrain = 1 << 15
}
