import XCTest
import Numerics
import Layers

final class LayerNormTests: XCTestCase {
    func testLayerNormForwardMatchesFormula() {
        var rng = RandomGenerator(seed: 5)
        let ln = LayerNorm(channels: 7, eps: 1e-6)
        randomize(ln, &rng)
        let x = randomTensor([3, 7], &rng, scale: 3)
        for i in 0..<x.count { x.data[i] += 100 }  // a large offset must not hurt precision
        let y = ln(x)
        for n in 0..<3 {
            let row = (0..<7).map { Double(x[n, $0]) }
            let mu = row.reduce(0, +) / 7
            let v = row.map { ($0 - mu) * ($0 - mu) }.reduce(0, +) / 7
            for c in 0..<7 {
                let expected = (row[c] - mu) / (v + 1e-6).squareRoot() * Double(ln.weight.value[c]) + Double(ln.bias.value[c])
                XCTAssertEqual(Double(y[n, c]), expected, accuracy: 2e-4)
            }
        }
        XCTAssertEqual(ln.namedParameters.map(\.name), ["weight", "bias"])
    }

    func testLayerNormGradientMatchesFiniteDifferences() {
        var rng = RandomGenerator(seed: 6)
        let ln = LayerNorm(channels: 8)
        randomize(ln, &rng)
        checkLayer(LayerUnderTest(module: ln, input: randomTensor([2, 3, 8], &rng),
                                  forward: { ln($0) },
                                  backward: { ln.backward(dOutput: $0, input: $1, dInput: $2) },
                                  backwardInput: { ln.backwardInput(dOutput: $0, input: $1, dInput: $2) }),
                   eps: 1e-2)
    }
}
