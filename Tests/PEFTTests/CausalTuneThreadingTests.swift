import Foundation
import Layers
import Numerics
import PEFT
import XCTest

/// The layer's parallel loops split work across threads; the result must not depend on
/// the number of workers (the other tests run with one).
final class CausalTuneThreadingTests: XCTestCase {
    private func run(_ options: CausalTuneOptions, threads: Int) throws -> [[Float]] {
        let saved = Parallel.threads
        Parallel.threads = threads
        defer { Parallel.threads = saved }
        let (b, c, grid, prefix) = (2, 192, (h: 16, w: 16), 5)
        var opts = options
        opts.scaleInit = 0.4
        let a = try CausalTuneAdapter(options: opts, layers: 2, channels: c, patchSize: 16, seed: 3)
        var rng = RandomGenerator(seed: 8)
        let t = prefix + grid.h * grid.w
        let x = Tensor(zeros: [b, t, c]), g = Tensor(zeros: [b, t, c])
        rng.fillNormal(x)
        rng.fillNormal(g)
        let out = Tensor(zeros: x.shape), dx = Tensor(zeros: x.shape)
        a.forward(layer: 1, input: x, output: out, prefixTokens: prefix, grid: grid)
        a.backward(layer: 1, dOutput: g, dInput: dx, prefixTokens: prefix, grid: grid)
        let f = a.features(layer: 1, input: x, prefixTokens: prefix, grid: grid)
        return [out.array, dx.array, f.spectrum.array, f.bandEnergy.array] + a.trainableParameters.map { $0.parameter.grad!.array }
    }

    func testResultsDoNotDependOnTheThreadCount() throws {
        for options in [CausalTuneOptions(tokens: 12), CausalTuneOptions(tokens: 12, transform: .fft, discardNoncausal: true),
                        CausalTuneOptions(tokens: 12, loraRank: 4, transform: .haar)] {
            let one = try run(options, threads: 1), many = try run(options, threads: 3)
            for (k, (a, b)) in zip(one, many).enumerated() {
                let scale = b.reduce(Float(0)) { Swift.max($0, abs($1)) }
                let err = zip(a, b).reduce(Float(0)) { Swift.max($0, abs($1.0 - $1.1)) }
                XCTAssertLessThanOrEqual(err, 1e-5 * Swift.max(scale, 1), "\(options.transform) array \(k)")
            }
        }
    }
}
