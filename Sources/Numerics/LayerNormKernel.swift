import Foundation

/// LayerNorm over the last dimension of a rows × C matrix (llm.c `layernorm_forward/backward`):
///
///     μ = (1/C) Σ_c x_c,   σ² = (1/C) Σ_c (x_c − μ)²,   rstd = 1/√(σ² + eps)
///     x̂_c = (x_c − μ) · rstd,   y_c = γ_c x̂_c + β_c
///
/// Backward, with g_c = γ_c · dy_c:
///
///     dx_c += rstd · (g_c − mean_c(g) − x̂_c · mean_c(g ⊙ x̂))
///     dγ_c += Σ_rows dy_c x̂_c,   dβ_c += Σ_rows dy_c
///
/// The forward caches `mean` and `rstd` per row (rows floats each) for the backward.
extension Kernels {
    /// inp, out: [rows, C]; weight, bias: [C]; mean, rstd: [rows] (written).
    public static func layerNormForward(out: UnsafeMutablePointer<Float>,
                                        mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                                        input: UnsafePointer<Float>,
                                        weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                        rows: Int, channels C: Int, eps: Float) {
        Parallel.forEach(rows, grain: Swift.max(1, elementGrain / Swift.max(C, 1))) { r in
            for i in r {
                let x = input + i * C
                let y = out + i * C
                // Two passes in Float with a Double mean: stable for activations of any offset.
                var s = 0.0
                for c in 0..<C { s += Double(x[c]) }
                let m = Float(s / Double(C))
                var v: Float = 0
                for c in 0..<C { let d = x[c] - m; v += d * d }
                let rs = 1 / (v / Float(C) + eps).squareRoot()
                for c in 0..<C { y[c] = (x[c] - m) * rs * weight[c] + bias[c] }
                mean[i] = m
                rstd[i] = rs
            }
        }
    }

    /// Accumulates dx (when given), dγ and dβ (when given). dOutput, input, dInput: [rows, C].
    public static func layerNormBackward(dInput: UnsafeMutablePointer<Float>?,
                                         dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?,
                                         dOutput: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                         weight: UnsafePointer<Float>,
                                         mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                         rows: Int, channels C: Int) {
        if let dx = dInput {
            Parallel.forEach(rows, grain: Swift.max(1, elementGrain / Swift.max(C, 1))) { r in
                for i in r {
                    let x = input + i * C, dy = dOutput + i * C, d = dx + i * C
                    let m = mean[i], rs = rstd[i]
                    var sg = SIMD8<Float>(), sgx = SIMD8<Float>()
                    let mv = SIMD8<Float>(repeating: m), rv = SIMD8<Float>(repeating: rs)
                    var c0 = 0
                    while c0 + 8 <= C {
                        let g = weight.load8(c0) * dy.load8(c0)
                        sg += g
                        sgx += g * (x.load8(c0) - mv) * rv
                        c0 += 8
                    }
                    var meanG = sg.sum(), meanGX = sgx.sum()
                    while c0 < C {
                        let g = weight[c0] * dy[c0]
                        meanG += g
                        meanGX += g * (x[c0] - m) * rs
                        c0 += 1
                    }
                    meanG /= Float(C)
                    meanGX /= Float(C)
                    for c in 0..<C {
                        let xh = (x[c] - m) * rs
                        d[c] += rs * (weight[c] * dy[c] - meanG - xh * meanGX)
                    }
                }
            }
        }
        if dWeight == nil && dBias == nil { return }
        // Parameter gradients: column blocks over the workers, each column summed over all
        // rows in row order (Double) — the same bits for any thread count.
        let block = 64
        let blocks = (C + block - 1) / block
        Parallel.forEach(blocks, grain: Swift.max(1, elementGrain / Swift.max(rows * block, 1))) { br in
            var sums = [Double](repeating: 0, count: 2 * block)
            sums.withUnsafeMutableBufferPointer { acc in
                let sw = acc.baseAddress!, sb = sw + block
                for bi in br {
                    let c0 = bi * block, w = Swift.min(block, C - c0)
                    for j in 0..<w { sw[j] = 0; sb[j] = 0 }
                    for i in 0..<rows {
                        let x = input + i * C + c0, dy = dOutput + i * C + c0
                        let m = mean[i], rs = rstd[i]
                        for j in 0..<w {
                            sw[j] += Double(dy[j] * (x[j] - m) * rs)
                            sb[j] += Double(dy[j])
                        }
                    }
                    for j in 0..<w {
                        dWeight?[c0 + j] += Float(sw[j])
                        dBias?[c0 + j] += Float(sb[j])
                    }
                }
            }
        }
    }
}
