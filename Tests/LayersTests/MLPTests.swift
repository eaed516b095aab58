import XCTest
import Foundation
import Numerics
import Layers

final class MLPTests: XCTestCase {
    func testMLPForwardIsFc1ExactGELUFc2() {
        var rng = RandomGenerator(seed: 7)
        let mlp = MLP(channels: 4, hiddenChannels: 6)
        randomize(mlp, &rng)
        let x = randomTensor([3, 4], &rng)
        let y = mlp(x)
        let h = mlp.fc1(x)
        for i in 0..<h.count {
            let v = Double(h.data[i])
            h.data[i] = Float(0.5 * v * (1 + erf(v / 2.0.squareRoot())))
        }
        let expected = mlp.fc2(h)
        XCTAssertLessThan(maxAbsDiff(y, expected), 1e-5)
        XCTAssertEqual(mlp.namedParameters.map(\.name), ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"])
    }

    func testMLPGradientMatchesFiniteDifferences() {
        var rng = RandomGenerator(seed: 8)
        let mlp = MLP(channels: 5, hiddenChannels: 12)
        randomize(mlp, &rng)
        checkLayer(LayerUnderTest(module: mlp, input: randomTensor([2, 3, 5], &rng),
                                  forward: { mlp($0) },
                                  backward: { mlp.backward(dOutput: $0, input: $1, dInput: $2) },
                                  backwardInput: { mlp.backwardInput(dOutput: $0, input: $1, dInput: $2) }))
    }

    func testReLUMLPIsMmcvFFN() {
        var rng = RandomGenerator(seed: 9)
        let mlp = MLP(channels: 4, hiddenChannels: 6, activation: .relu, naming: .mmcvFFN)
        randomize(mlp, &rng)
        let x = randomTensor([3, 4], &rng)
        let h = mlp.fc1(x)
        for i in 0..<h.count { h.data[i] = max(h.data[i], 0) }
        XCTAssertEqual(mlp(x).array, mlp.fc2(h).array)
        XCTAssertEqual(mlp.namedParameters.map(\.name), ["layers.0.0.weight", "layers.0.0.bias", "layers.1.weight", "layers.1.bias"])
    }

    func testReLUMLPGradientMatchesFiniteDifferences() {
        var rng = RandomGenerator(seed: 10)
        let mlp = MLP(channels: 5, hiddenChannels: 12, activation: .relu)
        randomize(mlp, &rng)
        checkLayer(LayerUnderTest(layer: mlp, input: randomTensor([2, 3, 5], &rng)), eps: 1e-3)
    }
}
