import XCTest
import Numerics
import Layers

/// A layer seen through closures, so one harness checks every layer's backward against
/// central finite differences of the objective L = Σ out ⊙ R (R fixed, random), summed in
/// Double.
struct LayerUnderTest {
    let module: Module
    let input: Tensor
    /// Runs the forward on `input` and returns a fresh output tensor.
    let forward: (Tensor) -> Tensor
    /// Full backward: accumulates dInput (when given) and parameter gradients.
    let backward: (_ dOutput: Tensor, _ input: Tensor, _ dInput: Tensor?) -> Void
    /// Frozen backward: accumulates dInput only.
    let backwardInput: (_ dOutput: Tensor, _ input: Tensor, _ dInput: Tensor) -> Void
}

extension LayerUnderTest {
    /// A layer through the `Layer` contract alone.
    init<L: Layer>(layer: L, input: Tensor) {
        self.init(module: layer, input: input, forward: { layer($0) },
                  backward: { layer.backward(dOutput: $0, input: $1, dInput: $2) },
                  backwardInput: { layer.backwardInput(dOutput: $0, input: $1, dInput: $2) })
    }
}

func randomTensor(_ shape: [Int], _ rng: inout RandomGenerator, scale: Float = 1) -> Tensor {
    let t = Tensor(zeros: shape)
    rng.fillNormal(t, std: scale)
    return t
}

func objective(_ out: Tensor, _ r: Tensor) -> Double {
    var s = 0.0
    for i in 0..<out.count { s += Double(out.data[i]) * Double(r.data[i]) }
    return s
}

/// max |a − n| / max |n| over a tensor: the relative error of a gradient as a whole.
func relativeError(_ analytic: [Float], _ numeric: [Double]) -> Double {
    var maxDiff = 0.0, maxRef = 1e-12
    for (a, n) in zip(analytic, numeric) {
        maxDiff = max(maxDiff, abs(Double(a) - n))
        maxRef = max(maxRef, abs(n))
    }
    return maxDiff / maxRef
}

/// Central differences of `f` with respect to the elements of `x` (restored afterwards).
/// Checks at most `limit` elements spread over the tensor.
func numericGradient(of x: Tensor, eps: Float, limit: Int = 400, _ f: () -> Double) -> (indices: [Int], values: [Double]) {
    let stride = max(1, x.count / limit)
    var indices: [Int] = [], values: [Double] = []
    var i = 0
    while i < x.count {
        let saved = x.data[i]
        x.data[i] = saved + eps
        let fp = f()
        x.data[i] = saved - eps
        let fm = f()
        x.data[i] = saved
        indices.append(i)
        values.append((fp - fm) / (2 * Double(eps)))
        i += stride
    }
    return (indices, values)
}

/// Every check the brief asks of a layer: input and parameter gradients against finite
/// differences, frozen backward equal to the input part of the full backward and touching
/// no parameter gradient, and accumulation (a second backward doubles every gradient).
func checkLayer(_ layer: LayerUnderTest, eps: Float = 1e-2, tolerance: Double = 1e-2,
                file: StaticString = #filePath, line: UInt = #line) {
    var rng = RandomGenerator(seed: 99)
    layer.module.setRequiresGrad(true)
    layer.module.zeroGrad()
    let input = layer.input
    let out = layer.forward(input)
    let r = randomTensor(out.shape, &rng)
    let dInput = Tensor(zeros: input.shape)
    layer.backward(r, input, dInput)
    let params = layer.module.namedParameters
    let analytic = params.map { $0.parameter.grad!.clone() }
    let analyticInput = dInput.clone()

    let f = { objective(layer.forward(input), r) }
    let ni = numericGradient(of: input, eps: eps, f)
    let errIn = relativeError(ni.indices.map { analyticInput.data[$0] }, ni.values)
    XCTAssertLessThan(errIn, tolerance, "input gradient", file: file, line: line)
    for (p, a) in zip(params, analytic) {
        let np = numericGradient(of: p.parameter.value, eps: eps, f)
        let err = relativeError(np.indices.map { a.data[$0] }, np.values)
        XCTAssertLessThan(err, tolerance, "gradient of \(p.name)", file: file, line: line)
        XCTAssertGreaterThan(np.values.map(abs).max() ?? 0, 1e-6, "\(p.name) gradient is not trivially zero",
                             file: file, line: line)
    }

    // Frozen backward: same input gradient, no parameter gradient touched.
    _ = layer.forward(input)
    let dFrozen = Tensor(zeros: input.shape)
    layer.backwardInput(r, input, dFrozen)
    XCTAssertLessThanOrEqual(maxAbsDiff(dFrozen, analyticInput), 1e-6 * max(1, maxAbs(analyticInput)),
                             "frozen input gradient", file: file, line: line)
    for (p, a) in zip(params, analytic) {
        XCTAssertEqual(p.parameter.grad!.array, a.array, "frozen backward touched \(p.name)", file: file, line: line)
    }

    // Accumulation: a second full backward adds the same gradients again.
    layer.backward(r, input, dInput)
    XCTAssertLessThanOrEqual(maxAbsDiff(dInput, scaled(analyticInput, 2)), 1e-5 * max(1, maxAbs(analyticInput)),
                             "input gradient accumulates", file: file, line: line)
    for (p, a) in zip(params, analytic) {
        XCTAssertLessThanOrEqual(maxAbsDiff(p.parameter.grad!, scaled(a, 2)), 1e-5 * max(1, maxAbs(a)),
                                 "\(p.name) gradient accumulates", file: file, line: line)
    }

    // A frozen module (no gradient buffers) runs the full backward as input-only.
    layer.module.setRequiresGrad(false)
    let dNoGrad = Tensor(zeros: input.shape)
    layer.backward(r, input, dNoGrad)
    XCTAssertLessThanOrEqual(maxAbsDiff(dNoGrad, analyticInput), 1e-6 * max(1, maxAbs(analyticInput)),
                             "backward of a frozen module", file: file, line: line)
    for p in params { XCTAssertNil(p.parameter.grad, file: file, line: line) }
}

func maxAbs(_ t: Tensor) -> Float { t.array.map(abs).max() ?? 0 }

func maxAbsDiff(_ a: Tensor, _ b: Tensor) -> Float {
    precondition(a.count == b.count)
    var m: Float = 0
    for i in 0..<a.count { m = max(m, abs(a.data[i] - b.data[i])) }
    return m
}

func scaled(_ t: Tensor, _ s: Float) -> Tensor {
    let c = t.clone()
    for i in 0..<c.count { c.data[i] *= s }
    return c
}

/// Fills every parameter of a module with N(0, scale²) (tests want non-trivial weights).
func randomize(_ module: Module, _ rng: inout RandomGenerator, scale: Float = 0.5) {
    for p in module.namedParameters { rng.fillNormal(p.parameter.value, std: scale) }
}
