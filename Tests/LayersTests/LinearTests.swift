import XCTest
import Numerics
import Layers

final class LinearTests: XCTestCase {
    func testLinearForwardMatchesNaiveLoop() {
        var rng = RandomGenerator(seed: 1)
        let layer = Linear(inputDimensions: 5, outputDimensions: 3)
        randomize(layer, &rng)
        let x = randomTensor([2, 4, 5], &rng)
        let y = layer(x)
        XCTAssertEqual(y.shape, [2, 4, 3])
        for n in 0..<8 {
            for o in 0..<3 {
                var s = Double(layer.bias!.value.data[o])
                for c in 0..<5 { s += Double(x.data[n * 5 + c]) * Double(layer.weight.value[o, c]) }
                XCTAssertEqual(Double(y.data[n * 3 + o]), s, accuracy: 1e-5)
            }
        }
    }

    func testLinearGradientMatchesFiniteDifferences() {
        var rng = RandomGenerator(seed: 2)
        let layer = Linear(inputDimensions: 6, outputDimensions: 4)
        randomize(layer, &rng)
        checkLayer(LayerUnderTest(module: layer, input: randomTensor([3, 2, 6], &rng),
                                  forward: { layer($0) },
                                  backward: { layer.backward(dOutput: $0, input: $1, dInput: $2) },
                                  backwardInput: { layer.backwardInput(dOutput: $0, dInput: $2) }))
    }

    func testLinearWithoutBiasGradientMatchesFiniteDifferences() {
        var rng = RandomGenerator(seed: 3)
        let layer = Linear(inputDimensions: 4, outputDimensions: 5, bias: false)
        randomize(layer, &rng)
        XCTAssertEqual(layer.namedParameters.map(\.name), ["weight"])
        checkLayer(LayerUnderTest(module: layer, input: randomTensor([3, 4], &rng),
                                  forward: { layer($0) },
                                  backward: { layer.backward(dOutput: $0, input: $1, dInput: $2) },
                                  backwardInput: { layer.backwardInput(dOutput: $0, dInput: $2) }))
    }

    func testLinearResetUsesPyTorchDefaultBound() {
        var rng = RandomGenerator(seed: 4)
        let layer = Linear(inputDimensions: 16, outputDimensions: 32)
        layer.reset(rng: &rng)
        let bound: Float = 0.25
        XCTAssertLessThanOrEqual(maxAbs(layer.weight.value), bound)
        XCTAssertGreaterThan(maxAbs(layer.weight.value), 0.9 * bound)
        XCTAssertLessThanOrEqual(maxAbs(layer.bias!.value), bound)
    }
}

final class ModuleTests: XCTestCase {
    func testParameterNamesFollowTheModuleTreeAndFreezingDropsGradients() {
        let attn = Attention(channels: 8, heads: 2)
        XCTAssertEqual(attn.parameters(prefix: "blocks.3.attn.").map(\.name),
                       ["blocks.3.attn.qkv.weight", "blocks.3.attn.qkv.bias",
                        "blocks.3.attn.proj.weight", "blocks.3.attn.proj.bias"])
        XCTAssertEqual(attn.parameterCount, 24 * 8 + 24 + 8 * 8 + 8)
        XCTAssertNil(attn.qkv.weight.grad, "parameters start frozen")
        attn.setRequiresGrad(true)
        XCTAssertEqual(attn.qkv.weight.grad?.shape, [24, 8])
        attn.qkv.weight.grad!.fill(3)
        attn.zeroGrad()
        XCTAssertEqual(maxAbs(attn.qkv.weight.grad!), 0)
        attn.setRequiresGrad(false)
        XCTAssertNil(attn.proj.bias!.grad)
        let linear = Linear(inputDimensions: 2, outputDimensions: 3)
        XCTAssertEqual(linear.parameters(prefix: "peft/f_t/").map(\.name), ["peft/f_t/weight", "peft/f_t/bias"])
    }
}
