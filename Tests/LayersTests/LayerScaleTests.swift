import XCTest
import Numerics
import Layers

final class LayerScaleTests: XCTestCase {
    func testLayerScaleMultipliesChannelsAndCanAddOntoResidual() {
        let ls = LayerScale(channels: 3)
        ls.gamma.value.copy(from: Tensor(shape: [3], values: [1, 2, -1]))
        let x = Tensor(shape: [2, 3], values: [1, 1, 1, 2, 3, 4])
        XCTAssertEqual(ls(x).array, [1, 2, -1, 2, 6, -4])
        let residual = Tensor(shape: [2, 3], repeating: 10)
        ls.forward(x, into: residual, accumulate: true)
        XCTAssertEqual(residual.array, [11, 12, 9, 12, 16, 6])
        XCTAssertEqual(ls.namedParameters.map(\.name), ["gamma"])
    }

    func testLayerScaleGradientMatchesFiniteDifferences() {
        var rng = RandomGenerator(seed: 51)
        let ls = LayerScale(channels: 6)
        randomize(ls, &rng)
        checkLayer(LayerUnderTest(module: ls, input: randomTensor([2, 4, 6], &rng),
                                  forward: { ls($0) },
                                  backward: { ls.backward(dOutput: $0, input: $1, dInput: $2) },
                                  backwardInput: { ls.backwardInput(dOutput: $0, dInput: $2) }))
    }
}
