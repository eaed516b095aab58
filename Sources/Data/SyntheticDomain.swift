/// The domains of the synthetic benchmark: `source` is the clean training domain, the
/// others the same scenes under fog, night, rain and snow. The dataset layout needs the
/// names to find a domain's folder; the Synthetic module renders them.
public enum SyntheticDomain: String, CaseIterable, Sendable {
    case source, fog, night, rain, snow
}
