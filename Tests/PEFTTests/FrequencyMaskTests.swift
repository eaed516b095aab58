import Foundation
import PEFT
import XCTest

/// The band-pass mask of reference §Causal-Tune layer and the band weights behind `band_energy`.
final class FrequencyMaskTests: XCTestCase {
    func testBandPassMaskMatchesSpecAtZeroAndCutoffs() {
        let f = FrequencyFilter()  // bandpass, gaussian, σ_L = 0.2, σ_H = 0.7
        func spec(_ r: Double) -> Double { exp(-r * r / (2 * 0.49)) * (1 - exp(-r * r / (2 * 0.04))) }
        XCTAssertEqual(f.mask(0), 0)
        XCTAssertEqual(f.mask(0.2), exp(-0.04 / 0.98) * (1 - exp(-0.5)), accuracy: 1e-15)
        XCTAssertEqual(f.mask(0.7), exp(-0.5) * (1 - exp(-0.49 / 0.08)), accuracy: 1e-15)
        for r in stride(from: 0.0, through: 1.5, by: 0.05) { XCTAssertEqual(f.mask(r), spec(r), accuracy: 1e-15) }
        // On a 10×10 DCT grid, coefficient (2, 0) sits at ρ = 0.2 and (7, 0) at ρ = 0.7.
        let m = f.mask(for: SpectralTransform(kind: .dct, h: 10, w: 10))
        XCTAssertEqual(m[0, 0], 0)
        XCTAssertEqual(Double(m[2, 0]), spec(0.2), accuracy: 1e-7)
        XCTAssertEqual(Double(m[7, 0]), spec(0.7), accuracy: 1e-7)
        XCTAssertEqual(Double(m[3, 4]), spec(0.5), accuracy: 1e-7)
    }

    func testLowcutAndHighcutKeepOneFactorEach() {
        let low = FrequencyFilter(mode: .lowcut, low: 0.3, high: 0.6)
        let high = FrequencyFilter(mode: .highcut, low: 0.3, high: 0.6)
        XCTAssertEqual(low.mask(0.3), 1 - exp(-0.5), accuracy: 1e-15)
        XCTAssertEqual(low.mask(5), 1, accuracy: 1e-12)
        XCTAssertEqual(high.mask(0.6), exp(-0.5), accuracy: 1e-15)
        XCTAssertEqual(high.mask(0), 1)
        XCTAssertEqual(FrequencyFilter(mode: .none).mask(0.42), 1)
    }

    func testIdealMaskIsOneInsideTheBandInclusive() {
        let f = FrequencyFilter(mode: .bandpass, shape: .ideal, low: 0.25, high: 0.5)
        XCTAssertEqual(f.mask(0), 0)
        XCTAssertEqual(f.mask(0.2499), 0)
        XCTAssertEqual(f.mask(0.25), 1)
        XCTAssertEqual(f.mask(0.5), 1)
        XCTAssertEqual(f.mask(0.5001), 0)
        XCTAssertEqual(FrequencyFilter(mode: .lowcut, shape: .ideal, low: 0.25, high: 0.5).mask(0.9), 1)
        XCTAssertEqual(FrequencyFilter(mode: .highcut, shape: .ideal, low: 0.25, high: 0.5).mask(0.1), 1)
    }

    func testBandWeightsPartitionTheSpectrumAndCausalIsTheMask() {
        for mode in FilterMode.allCases {
            for shape in FilterShape.allCases {
                let f = FrequencyFilter(mode: mode, shape: shape, low: 0.2, high: 0.7)
                for r in stride(from: 0.0, through: 1.5, by: 0.01) {
                    let w = f.bandWeights(r)
                    XCTAssertEqual(w.low + w.causal + w.high, 1, accuracy: 1e-12)
                    XCTAssertEqual(w.causal, f.mask(r), accuracy: 1e-12)
                    XCTAssertGreaterThanOrEqual(w.low, 0)
                    XCTAssertGreaterThanOrEqual(w.high, 0)
                }
            }
        }
    }

    func testFFTMaskIsSymmetricUnderNegatedFrequencies() {
        let m = FrequencyFilter().mask(for: SpectralTransform(kind: .fft, h: 6, w: 8))
        for u in 0..<6 { for v in 0..<8 {
            XCTAssertEqual(m[u, v], m[(6 - u) % 6, (8 - v) % 8])
        } }
    }
}
