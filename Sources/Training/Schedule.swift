import Foundation

/// Learning-rate schedules, evaluated in closed form from the step index.
///
/// **poly** (mmseg/mmengine `PolyLR`, `eta_min = 0`, `by_epoch = False`, `begin = 0`,
/// `end = iters`): the update with 0-based index `i` (the first optimiser step has
/// `i = 0` and uses the base rate) uses
///
///     lr(i) = base · (1 − min(i, iters) / iters)^power
///
/// This is mmengine's `_get_closed_form_lr`; its recursive form gives the same values.
/// **constant**: `lr(i) = base`.
public enum LearningRateSchedule: Equatable, Sendable {
    case poly(base: Double, iters: Int, power: Double)
    case constant(base: Double)

    /// The learning rate of the update with 0-based index `step`.
    public func rate(at step: Int) -> Double {
        switch self {
        case let .constant(base):
            return base
        case let .poly(base, iters, power):
            guard iters > 0 else { return base }
            let frac = 1 - Double(min(max(step, 0), iters)) / Double(iters)
            return base * pow(frac, power)
        }
    }
}
