import Numerics

/// The token sets `T_i` of every layer — full `[L, m, C]` or low rank `A_i B_i` — and their
/// gradients. The Mask2Former head reads all layers' tokens as its queries (Rein's token →
/// query link), so they are reachable outside a layer's forward too.
extension CausalTuneAdapter {
    /// `[L, m, C]`: `allTokens`' shape.
    public var linkTokenShape: (layers: Int, tokens: Int, channels: Int) { (layers, tokenCount, channels) }

    /// Writes every layer's tokens `T_i` into `out [L, m, C]` (`A_i B_i` for low rank).
    public func allTokens(into out: Tensor) {
        precondition(out.shape == [layers, tokenCount, channels], "allTokens: \(out.shape), expected [\(layers), \(tokenCount), \(channels)]")
        for l in 0..<layers { _ = layerTokens(l, into: out.slice(l)) }
    }

    /// Accumulates `∂L/∂T [L, m, C]` (from a consumer of `allTokens`, e.g. the head's query
    /// link) into the token gradients (`dA_i += dT_i B_iᵀ`, `dB_i += A_iᵀ dT_i` for low rank).
    public func accumulateAllTokensGradient(_ dTokens: Tensor) {
        precondition(dTokens.shape == [layers, tokenCount, channels], "accumulateAllTokensGradient: \(dTokens.shape)")
        for l in 0..<layers {
            accumulateTokenGradient(layer: l, dt: UnsafePointer(dTokens.data + l * tokenCount * channels))
        }
    }

    /// `T_i`: a pointer into `peft/tokens`, or `A_i B_i` written into `scratch` for low rank.
    func layerTokens(_ layer: Int, into scratch: Tensor) -> UnsafeMutablePointer<Float> {
        let m = tokenCount, c = channels
        if let t = tokens?.value {
            Kernels.copy(t.data + layer * m * c, into: scratch.data, count: m * c)
            return scratch.data
        }
        let r = rank!, a = tokensA!.value, bm = tokensB!.value
        BLAS.gemm(transposeA: false, transposeB: false, m: m, n: c, k: r,
                  a: a.data + layer * m * r, lda: r, b: bm.data + layer * r * c, ldb: c,
                  c: scratch.data, ldc: c)
        return scratch.data
    }

    func accumulateTokenGradient(layer: Int, dt: UnsafePointer<Float>) {
        let m = tokenCount, c = channels
        if let g = tokens?.grad {
            let dst = g.data + layer * m * c
            Parallel.forEach(m * c, grain: Kernels.elementGrain) { range in
                for k in range { dst[k] += dt[k] }
            }
            return
        }
        let r = rank!
        // dA_i += dT_i B_iᵀ  ([m, C]·[C, r]);  dB_i += A_iᵀ dT_i  ([r, m]·[m, C]).
        BLAS.gemm(transposeA: false, transposeB: true, m: m, n: r, k: c,
                  a: dt, lda: c, b: tokensB!.value.data + layer * r * c, ldb: c,
                  beta: 1, c: tokensA!.grad!.data + layer * m * r, ldc: r)
        BLAS.gemm(transposeA: true, transposeB: false, m: r, n: c, k: m,
                  a: tokensA!.value.data + layer * m * r, lda: r, b: dt, ldb: c,
                  beta: 1, c: tokensB!.grad!.data + layer * r * c, ldc: c)
    }
}
