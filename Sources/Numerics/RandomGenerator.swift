import Foundation

/// A seedable, deterministic random number generator (xoshiro256**, seeded by splitmix64).
///
/// The whole state is four `UInt64`s, so it can be saved in a checkpoint and restored
/// exactly (`state`). Same seed → same stream on every machine and world size.
public struct RandomGenerator: RandomNumberGenerator, Equatable, Sendable {
    public private(set) var state: [UInt64]

    public init(seed: UInt64) {
        state = (0..<4).map { RandomGenerator.mix(seed, UInt64($0)) }
    }

    /// splitmix64's output for the (b+1)-th step from `a`: a well-mixed 64-bit value of the
    /// pair, used to derive independent seeds from (seed, index) without a shared stream.
    /// `init(seed:)`'s four state words are `mix(seed, 0…3)`.
    @inline(__always)
    public static func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
        var z = a &+ 0x9E37_79B9_7F4A_7C15 &* (b &+ 1)
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Restores a generator from a saved `state`.
    public init(state: [UInt64]) {
        precondition(state.count == 4, "RandomGenerator state has 4 words")
        self.state = state
    }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = rotl(state[1] &* 5, 7) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= t
        state[3] = rotl(state[3], 45)
        return result
    }

    @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1) with 24 random bits (every Float in the grid equally likely).
    @inline(__always)
    public mutating func uniform() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// Uniform in [low, high).
    @inline(__always)
    public mutating func uniform(_ low: Float, _ high: Float) -> Float { low + (high - low) * uniform() }

    /// Standard normal by Box–Muller (double precision internally).
    public mutating func normal() -> Float {
        let u1 = (Double(next() >> 11) + 1) * (1.0 / 9_007_199_254_740_993.0)  // (0, 1]
        let u2 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        return Float((-2 * Foundation.log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }

    /// An integer uniform in `0..<bound` (unbiased).
    public mutating func integer(below bound: Int) -> Int {
        precondition(bound > 0)
        return Int(next(upperBound: UInt64(bound)))
    }

    /// Fills `t` with U(low, high).
    public mutating func fillUniform(_ t: Tensor, _ low: Float, _ high: Float) {
        let p = t.data
        for i in 0..<t.count { p[i] = uniform(low, high) }
    }

    /// Fills `t` with N(mean, std²).
    public mutating func fillNormal(_ t: Tensor, mean: Float = 0, std: Float = 1) {
        let p = t.data
        for i in 0..<t.count { p[i] = mean + std * normal() }
    }

    /// A new generator derived from this one's stream (for independent sub-streams).
    public mutating func split() -> RandomGenerator { RandomGenerator(seed: next()) }
}
