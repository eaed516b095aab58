import XCTest
import Foundation
import Numerics

/// Resampling against PyTorch. The expected arrays are a fixture: printed once by
/// `Tests/NumericsTests/make_resample_fixture.py` (torch CPU, float32), each under a
/// comment naming the torch call that produced it. Input: x.flat[i] = sin(0.7 i) + 0.05 i,
/// shape [1, 2, 4, 5].
final class ResamplingTests: XCTestCase {
    static func input(_ shape: [Int], _ f: (Double) -> Double) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, values: (0..<n).map { Float(f(Double($0))) })
    }
    static let x = input([1, 2, 4, 5]) { sin(0.7 * $0) + 0.05 * $0 }

    // F.interpolate(x, size=(7, 3), mode='bilinear', align_corners=False)
    static let bilinear7x3: [Float] = [
        0.2314059, 1.08545, 0.6943953, 0.05672015, 0.4719131, 0.5300113, -0.2227769, -0.5097454,
        0.2669971, 0.5131667, 0.4110734, 0.3897503, 1.181887, 1.36726, 0.6057761, 0.3646089,
        0.6685541, 1.088942, -0.1461897, 0.2318629, 1.390921, 1.958987, 1.403118, 0.4642649,
        1.407434, 1.402156, 1.12792, 0.524949, 1.400615, 2.189768, 1.29238, 1.301433,
        1.529785, 2.114743, 1.298282, 0.8855982, 1.67172, 2.064979, 2.073805, 1.394831,
        2.544165, 2.816433,
    ]

    // F.interpolate(x, size=(3, 8), mode='bilinear', align_corners=False)
    static let bilinear3x8: [Float] = [
        -0.01679721, 0.2019744, 0.5029946, 0.7004199, 0.8012151, 0.8053802, 0.6470755, 0.5236258,
        0.5281017, 0.5084993, 0.4787823, 0.4336429, 0.397899, 0.3715507, 0.3864948, 0.4001674,
        0.0847511, 0.09450525, 0.1275842, 0.3329628, 0.5931156, 0.9080428, 1.201488, 1.405228,
        1.704569, 1.700667, 1.677339, 1.494226, 1.272752, 1.012918, 0.8072461, 0.6674886,
        1.305515, 1.288275, 1.268318, 1.290395, 1.337982, 1.411078, 1.51238, 1.585484,
        1.354978, 1.57688, 1.89083, 2.177306, 2.388502, 2.524415, 2.48052, 2.435807,
    ]

    // F.interpolate(x, size=(7, 9), mode='bicubic', align_corners=False)
    static let bicubic7x9: [Float] = [
        -0.07164786, 0.2407109, 0.7166653, 1.103757, 1.255894, 1.285947, 1.074155, 0.7224221,
        0.4817698, -0.1363787, -0.04786245, 0.0949495, 0.2509301, 0.3717363, 0.4716637, 0.5252221,
        0.5264813, 0.5204207, -0.1084016, -0.2908459, -0.5536096, -0.6912537, -0.6305662, -0.4711601,
        -0.1245463, 0.2819584, 0.5466798, 0.6507386, 0.6124442, 0.5466741, 0.4524732, 0.3646516,
        0.2882401, 0.2500111, 0.2615967, 0.2749872, 1.101551, 1.269229, 1.504684, 1.591187,
        1.481044, 1.282473, 0.9351984, 0.5711522, 0.3382781, 0.3709938, 0.4198021, 0.5061107,
        0.6366708, 0.7768509, 0.9173769, 1.049629, 1.138277, 1.188649, -0.2480589, -0.3119471,
        -0.3713875, -0.2251669, 0.1105473, 0.5252877, 1.05916, 1.535474, 1.829546, 2.17561,
        2.148888, 2.068547, 1.795299, 1.403386, 0.9775378, 0.537823, 0.2274166, 0.04697876,
        1.265128, 1.32237, 1.403937, 1.43931, 1.414375, 1.364152, 1.275476, 1.185599,
        1.128294, 0.2335715, 0.3750651, 0.625245, 1.007259, 1.409722, 1.803338, 2.141945,
        2.332136, 2.433549, 1.265576, 1.220842, 1.158693, 1.137161, 1.175395, 1.244608,
        1.375044, 1.522922, 1.618518, 2.412205, 2.250136, 1.975914, 1.608299, 1.270068,
        0.9686249, 0.7814737, 0.756662, 0.7612355, 1.662642, 1.754311, 1.89535, 2.015739,
        2.074807, 2.103411, 2.074362, 2.008868, 1.962546, 0.9582389, 1.257729, 1.74092,
        2.273237, 2.677285, 2.998359, 3.123634, 3.044272, 2.9679,
    ]

    // F.interpolate(x, size=(2, 3), mode='bicubic', align_corners=False)
    static let bicubic2x3: [Float] = [
        -0.1675785, 0.03083746, 0.4531838, 0.6999404, 1.038892, 0.9968708, 1.004736, 1.420331,
        1.54898, 1.952518, 1.854744, 1.617533,
    ]

    // F.interpolate(x, scale_factor=(1.7, 2.3), mode='bicubic', align_corners=False)  # size (6, 11)
    static let bicubicScale: [Float] = [
        -0.07828861, 0.1081883, 0.4459363, 0.8373666, 1.105565, 1.227715, 1.296606, 1.235631,
        1.021376, 0.7440429, 0.5162912, -0.1449223, -0.0987551, -0.02261661, 0.09188963, 0.1941611,
        0.2819612, 0.3836123, 0.4410838, 0.4965959, 0.5132427, 0.520841, -0.07423002, -0.1838403,
        -0.395359, -0.5948765, -0.6907739, -0.6624635, -0.554464, -0.39026, -0.06911316, 0.2497945,
        0.501011, 0.7401982, 0.7332542, 0.7298665, 0.6936527, 0.6356888, 0.5613517, 0.465726,
        0.3950256, 0.3160968, 0.2755166, 0.2487466, 1.054003, 1.148863, 1.336147, 1.49884,
        1.55698, 1.501003, 1.372383, 1.20813, 0.9230599, 0.6617646, 0.4588013, 0.2204816,
        0.2371185, 0.2513511, 0.3236848, 0.4252339, 0.558155, 0.7403038, 0.8834352, 1.078762,
        1.216433, 1.316901, 2.173552, 2.147877, 2.136071, 2.000509, 1.787974, 1.506351,
        1.130111, 0.8400756, 0.475639, 0.2452733, 0.08212408, 1.201403, 1.238429, 1.308453,
        1.379189, 1.416035, 1.417996, 1.404244, 1.37245, 1.312933, 1.254274, 1.208001,
        0.223757, 0.3156298, 0.4509876, 0.7168877, 1.003096, 1.300907, 1.671424, 1.92096,
        2.203967, 2.3495, 2.445021, 1.443461, 1.401099, 1.323874, 1.236111, 1.175225,
        1.151857, 1.148354, 1.17674, 1.26051, 1.361527, 1.443538, 2.401062, 2.30867,
        2.16423, 1.916375, 1.666093, 1.43113, 1.159033, 0.998396, 0.8621536, 0.8427528,
        0.8436601, 1.481638, 1.568059, 1.717868, 1.915072, 2.071849, 2.180067, 2.287174,
        2.32292, 2.317796, 2.262041, 2.210865,
    ]

    // d/dx sum(F.interpolate(x, size=(7, 3), mode='bilinear') * g), g.flat[i] = cos(0.3 i)
    static let bilinearBackward7x3: [Float] = [
        0.9222518, 0.4611259, 1.15222, 0.272713, 0.5454255, -0.2940038, -0.1470019, -0.8343683,
        -0.3843999, -0.7687993, -0.906683, -0.4533415, -1.137827, -0.2713302, -0.5426599, 0.2900846,
        0.1450423, 0.8391097, 0.3893793, 0.778758, 0.9156971, 0.4578485, 1.135978, 0.2656454,
        0.5312905, -0.3096299, -0.1548149, -0.8545108, -0.3894155, -0.7788304, -0.9004307, -0.4502153,
        -1.122132, -0.2644607, -0.5289209, 0.3061041, 0.153052, 0.8598437, 0.3945749, 0.7891492,
    ]

    func assertClose(_ t: Tensor, _ expected: [Float], _ tol: Float = 2e-5, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(t.count, expected.count, file: file, line: line)
        var worst: Float = 0
        for (a, b) in zip(t.array, expected) { worst = max(worst, abs(a - b)) }
        XCTAssertLessThan(worst, tol, "max abs error \(worst)", file: file, line: line)
    }

    func testBilinearMatchesPyTorchForUpAndDownSampling() {
        let a = Tensor(zeros: [1, 2, 7, 3])
        Resample.bilinear(Self.x, into: a)
        assertClose(a, Self.bilinear7x3)
        let b = Tensor(zeros: [1, 2, 3, 8])
        Resample.bilinear(Self.x, into: b)
        assertClose(b, Self.bilinear3x8)
    }

    func testBilinearBackwardMatchesPyTorchGradient() {
        let g = Self.input([1, 2, 7, 3]) { cos(0.3 * $0) }
        let dx = Tensor(shape: [1, 2, 4, 5], repeating: 1)
        Resample.bilinearBackward(dOutput: g, dInput: dx)
        // it accumulates onto the ones already there
        assertClose(dx, Self.bilinearBackward7x3.map { $0 + 1 })
    }

    func testBilinearBackwardIsTheAdjointOfForward() {
        // <B x, g> = <x, Bᵀ g> for random x, g and an odd size pair.
        var rng = RandomGenerator(seed: 3)
        let x = Tensor(zeros: [2, 3, 5, 6]), g = Tensor(zeros: [2, 3, 13, 4])
        rng.fillNormal(x)
        rng.fillNormal(g)
        let y = Tensor(zeros: g.shape)
        Resample.bilinear(x, into: y)
        let dx = Tensor(zeros: x.shape)
        Resample.bilinearBackward(dOutput: g, dInput: dx)
        var lhs = 0.0, rhs = 0.0
        for i in 0..<y.count { lhs += Double(y.data[i]) * Double(g.data[i]) }
        for i in 0..<x.count { rhs += Double(x.data[i]) * Double(dx.data[i]) }
        XCTAssertEqual(lhs, rhs, accuracy: 1e-4 * max(1, abs(lhs)))
    }

    func testBilinearToSameSizeIsIdentity() {
        let y = Tensor(zeros: Self.x.shape)
        Resample.bilinear(Self.x, into: y)
        XCTAssertEqual(y.array, Self.x.array)
    }

    func testBicubicMatchesPyTorchForUpAndDownSampling() {
        let a = Tensor(zeros: [1, 2, 7, 9])
        Resample.bicubic(Self.x, into: a)
        assertClose(a, Self.bicubic7x9)
        let b = Tensor(zeros: [1, 2, 2, 3])
        Resample.bicubic(Self.x, into: b)
        assertClose(b, Self.bicubic2x3)
    }

    func testBicubicWithScaleFactorMatchesPyTorch() {
        let a = Tensor(zeros: [1, 2, 6, 11])
        Resample.bicubic(Self.x, into: a, scaleFactor: (1.7, 2.3))
        assertClose(a, Self.bicubicScale)
    }

    func testBicubicCoefficientsSumToOneAndInterpolate() {
        for t: Float in [0, 0.1, 0.25, 0.5, 0.9, 1] {
            let w = Resample.cubicCoefficients(t)
            XCTAssertEqual(w.0 + w.1 + w.2 + w.3, 1, accuracy: 1e-6)
        }
        let w0 = Resample.cubicCoefficients(0)
        XCTAssertEqual([w0.0, w0.1, w0.2, w0.3], [0, 1, 0, 0])
        // t = 0.5 with A = -0.75: (-0.09375, 0.59375, 0.59375, -0.09375)
        let w = Resample.cubicCoefficients(0.5)
        XCTAssertEqual(w.0, -0.09375, accuracy: 1e-7)
        XCTAssertEqual(w.1, 0.59375, accuracy: 1e-7)
    }

    func testNearestFollowsOpenCVIndexRule() {
        // 4 -> 6: floor(d * 4/6) = 0 0 1 2 2 3 ; 5 -> 3: floor(d * 5/3) = 0 1 3
        XCTAssertEqual(Resample.nearestIndices(input: 4, output: 6), [0, 0, 1, 2, 2, 3])
        XCTAssertEqual(Resample.nearestIndices(input: 5, output: 3), [0, 1, 3])
        let labels: [UInt8] = [0, 1, 2, 3, 4,
                               10, 11, 12, 13, 14]
        let up = Resample.nearest(labels, height: 2, width: 5, outHeight: 4, outWidth: 3)
        XCTAssertEqual(up, [0, 1, 3, 0, 1, 3, 10, 11, 13, 10, 11, 13])
        // interleaved channels move together
        let rgb: [UInt8] = [1, 2, 3, 4, 5, 6]  // 1x2 pixels, 3 channels
        var out = [UInt8](repeating: 0, count: 12)
        rgb.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { d in
                Resample.nearest(s.baseAddress!, height: 1, width: 2, channels: 3, into: d.baseAddress!,
                                 outHeight: 1, outWidth: 4)
            }
        }
        XCTAssertEqual(out, [1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6])
    }
}
