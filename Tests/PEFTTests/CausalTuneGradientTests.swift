import Foundation
import Numerics
import Layers
import PEFT
import XCTest

/// Finite-difference checks of the whole layer's backward for every variant.
///
/// The loss is `L = Σ out ⊙ G` with a fixed random `G`; central differences in Float32
/// at a sample of coordinates of the input and of every parameter.
final class CausalTuneGradientTests: XCTestCase {
    struct Setup {
        let adapter: CausalTuneAdapter
        let x: Tensor
        let g: Tensor
        let prefix: Int
        let grid: (h: Int, w: Int)
        let layer: Int
    }

    private func makeSetup(_ options: CausalTuneOptions, prefix: Int, grid: (h: Int, w: Int), c: Int = 6, b: Int = 2) throws -> Setup {
        var opts = options
        opts.scaleInit = 0.7   // make the refinement branch matter
        let adapter = try CausalTuneAdapter(options: opts, layers: 2, channels: c, patchSize: 2, seed: 17)
        var rng = RandomGenerator(seed: 99)
        // Larger tokens than the init, so the softmax is far from uniform.
        for p in adapter.trainableParameters where p.name.hasPrefix("peft/tokens") { rng.fillUniform(p.parameter.value, -1, 1) }
        let t = prefix + grid.h * grid.w
        let x = Tensor(zeros: [b, t, c]), g = Tensor(zeros: [b, t, c])
        rng.fillNormal(x)
        rng.fillNormal(g)
        return Setup(adapter: adapter, x: x, g: g, prefix: prefix, grid: grid, layer: 1)
    }

    private func loss(_ s: Setup) -> Double {
        let out = Tensor(zeros: s.x.shape)
        s.adapter.forward(layer: s.layer, input: s.x, output: out, prefixTokens: s.prefix, grid: s.grid)
        var l = 0.0
        for k in 0..<out.count { l += Double(out.data[k]) * Double(s.g.data[k]) }
        return l
    }

    private func check(_ options: CausalTuneOptions, prefix: Int = 1, grid: (h: Int, w: Int) = (4, 6),
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let s = try makeSetup(options, prefix: prefix, grid: grid)
        // Analytic gradients.
        s.adapter.zeroGrad()
        let out = Tensor(zeros: s.x.shape)
        s.adapter.forward(layer: s.layer, input: s.x, output: out, prefixTokens: s.prefix, grid: s.grid)
        let dx = Tensor(zeros: s.x.shape)
        s.adapter.backward(layer: s.layer, dOutput: s.g, dInput: dx, prefixTokens: s.prefix, grid: s.grid)

        var targets: [(String, Tensor, Tensor)] = [("input", s.x, dx)]
        for p in s.adapter.trainableParameters { targets.append((p.name, p.parameter.value, p.parameter.grad!)) }
        var rng = RandomGenerator(seed: 5)
        let label = "\(options.method.rawValue)/\(options.transform.rawValue)/\(options.filter.mode.rawValue)/\(options.filter.shape.rawValue) discard=\(options.discardNoncausal) rank=\(String(describing: options.loraRank))"
        for (name, value, grad) in targets {
            // Sample coordinates; for tokens, include the other layer's (whose gradient is 0).
            var indices = (0..<12).map { _ in rng.integer(below: value.count) }
            if name == "input" { indices += Array(0..<3) }  // a cls-token coordinate
            var maxGrad: Float = 1e-3
            for k in 0..<grad.count { maxGrad = Swift.max(maxGrad, abs(grad.data[k])) }
            for k in indices {
                let saved = value.data[k]
                let eps: Float = 1e-2
                value.data[k] = saved + eps
                let lp = loss(s)
                value.data[k] = saved - eps
                let lm = loss(s)
                value.data[k] = saved
                let fd = (lp - lm) / Double(2 * eps)
                let an = Double(grad.data[k])
                XCTAssertEqual(an, fd, accuracy: 2e-3 * Double(maxGrad) + 1e-2 * abs(fd) + 1e-4,
                               "\(label): ∂L/∂\(name)[\(k)]", file: file, line: line)
            }
        }
    }

    func testGradientsOfEveryTransformFilterModeAndShape() throws {
        for transform in [TransformKind.dct, .fft, .haar] {
            for mode in FilterMode.allCases {
                for shape in FilterShape.allCases {
                    let opts = CausalTuneOptions(tokens: 5, transform: transform,
                                                 filter: FrequencyFilter(mode: mode, shape: shape, low: 0.2, high: 0.6))
                    try check(opts, prefix: transform == .fft ? 5 : 1, grid: transform == .haar ? (4, 8) : (4, 6))
                }
            }
        }
    }

    func testGradientsOfReinAndIdentityTransform() throws {
        try check(.rein(tokens: 5), prefix: 5)
        try check(CausalTuneOptions(tokens: 5, transform: .identity, filter: FrequencyFilter(mode: .none)))
    }

    func testGradientsWithLowRankTokens() throws {
        try check(CausalTuneOptions(tokens: 5, loraRank: 2))
        try check(.rein(tokens: 4, loraRank: 3), prefix: 5)
    }

    func testGradientsWhenDiscardingTheNonCausalPart() throws {
        try check(CausalTuneOptions(tokens: 5, discardNoncausal: true))
        try check(CausalTuneOptions(tokens: 5, transform: .fft, discardNoncausal: true,
                                    filter: FrequencyFilter(mode: .highcut, shape: .ideal, low: 0.2, high: 0.5)), prefix: 5)
        try check(CausalTuneOptions(tokens: 5, loraRank: 2, transform: .haar, discardNoncausal: true), grid: (4, 8))
    }

    func testGradientsWithASingleNullSinkToken() throws {
        try check(CausalTuneOptions(tokens: 1))
    }

    func testBackwardAccumulatesIntoExistingGradients() throws {
        let s = try makeSetup(CausalTuneOptions(tokens: 5), prefix: 1, grid: (4, 6))
        s.adapter.zeroGrad()
        let out = Tensor(zeros: s.x.shape)
        s.adapter.forward(layer: 1, input: s.x, output: out, prefixTokens: 1, grid: s.grid)
        let dx1 = Tensor(zeros: s.x.shape)
        s.adapter.backward(layer: 1, dOutput: s.g, dInput: dx1, prefixTokens: 1, grid: s.grid)
        let once = s.adapter.trainableParameters.map { $0.parameter.grad!.array }
        let dx2 = dx1.clone()
        s.adapter.backward(layer: 1, dOutput: s.g, dInput: dx2, prefixTokens: 1, grid: s.grid)
        for (p, g1) in zip(s.adapter.trainableParameters, once) {
            for (a, b) in zip(p.parameter.grad!.array, g1) { XCTAssertEqual(a, 2 * b, accuracy: 1e-5 * Swift.max(1, abs(b)), p.name) }
        }
        for (a, b) in zip(dx2.array, dx1.array) { XCTAssertEqual(a, 2 * b, accuracy: 1e-5 * Swift.max(1, abs(b))) }
        // Released caches come back with the next forward, with the same results.
        s.adapter.releaseCaches()
        let out2 = Tensor(zeros: s.x.shape)
        s.adapter.forward(layer: 1, input: s.x, output: out2, prefixTokens: 1, grid: s.grid)
        XCTAssertEqual(out2.array, out.array)
        let dx3 = Tensor(zeros: s.x.shape)
        s.adapter.backward(layer: 1, dOutput: s.g, dInput: dx3, prefixTokens: 1, grid: s.grid)
        XCTAssertEqual(dx3.array, dx1.array)
    }
}

/// One shared cache for the backbone's recompute mode gives the same gradients.
final class CausalTuneSharedCacheTests: XCTestCase {
    func testRecomputeWithOneSharedCacheMatchesPerLayerCaches() throws {
        func gradients(shared: Bool) throws -> [[Float]] {
            let a = try CausalTuneAdapter(options: CausalTuneOptions(tokens: 5, scaleInit: 0.5), layers: 3, channels: 4,
                                          patchSize: 2, seed: 2)
            a.sharesOneCache = shared
            var rng = RandomGenerator(seed: 3)
            let xs = (0..<3).map { _ -> Tensor in let t = Tensor(zeros: [2, 1 + 24, 4]); rng.fillNormal(t); return t }
            let g = Tensor(zeros: [2, 25, 4])
            rng.fillNormal(g)
            let out = Tensor(zeros: g.shape)
            for l in 0..<3 { a.forward(layer: l, input: xs[l], output: out, prefixTokens: 1, grid: (4, 6)) }
            var dxs: [[Float]] = []
            for l in (0..<3).reversed() {
                if shared { a.forward(layer: l, input: xs[l], output: out, prefixTokens: 1, grid: (4, 6)) }
                let dx = Tensor(zeros: g.shape)
                a.backward(layer: l, dOutput: g, dInput: dx, prefixTokens: 1, grid: (4, 6))
                dxs.append(dx.array)
            }
            return dxs + a.trainableParameters.map { $0.parameter.grad!.array }
        }
        XCTAssertEqual(try gradients(shared: true), try gradients(shared: false))
    }
}
