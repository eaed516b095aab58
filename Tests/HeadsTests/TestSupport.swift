import XCTest
import Foundation
import Numerics
import Layers

/// A fixture file written by one of the generator scripts next to this file.
func loadFixture(_ name: String) throws -> [String: Any] {
    guard let url = Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures") else {
        throw NSError(domain: "HeadsTests", code: 1, userInfo: [NSLocalizedDescriptionKey: "missing fixture \(name)"])
    }
    let data = try Data(contentsOf: url)
    return try JSONSerialization.jsonObject(with: data) as! [String: Any]
}

/// `{"shape": [...], "values": [...]}` as a Tensor.
func tensor(_ any: Any?) -> Tensor {
    let d = any as! [String: Any]
    let shape = (d["shape"] as! [NSNumber]).map(\.intValue)
    let values = (d["values"] as! [NSNumber]).map(\.floatValue)
    return Tensor(shape: shape, values: values)
}

func levelShapes(_ any: Any?) -> [(h: Int, w: Int)] {
    (any as! [[NSNumber]]).map { (h: $0[0].intValue, w: $0[1].intValue) }
}

func randomTensor(_ shape: [Int], _ rng: inout RandomGenerator, scale: Float = 1) -> Tensor {
    let t = Tensor(zeros: shape)
    rng.fillNormal(t, std: scale)
    return t
}

/// Σ out ⊙ r in Double.
func objective(_ out: Tensor, _ r: Tensor) -> Double {
    var s = 0.0
    for i in 0..<out.count { s += Double(out.data[i]) * Double(r.data[i]) }
    return s
}

/// max |a − b| / max(1e-12, max |b|).
func relativeError(_ a: Tensor, _ b: Tensor) -> Double {
    precondition(a.count == b.count, "relativeError: \(a.shape) vs \(b.shape)")
    var d = 0.0, m = 1e-12
    for i in 0..<a.count {
        d = max(d, abs(Double(a.data[i]) - Double(b.data[i])))
        m = max(m, abs(Double(b.data[i])))
    }
    return d / m
}

/// Central differences of `f` at up to `limit` elements of `x` spread over it, compared with
/// `analytic` (same shape as x): returns max |a − n| / max |n|.
func finiteDifferenceError(of x: Tensor, analytic: Tensor, eps: Float, limit: Int = 200,
                           _ f: () -> Double) -> Double {
    let stride = max(1, x.count / limit)
    var maxDiff = 0.0, maxRef = 1e-12
    var i = 0
    while i < x.count {
        let saved = x.data[i]
        x.data[i] = saved + eps
        let fp = f()
        x.data[i] = saved - eps
        let fm = f()
        x.data[i] = saved
        let n = (fp - fm) / (2 * Double(eps))
        maxDiff = max(maxDiff, abs(Double(analytic.data[i]) - n))
        maxRef = max(maxRef, abs(n))
        i += stride
    }
    return maxDiff / maxRef
}
