// The Distributed module; its files arrive with their issues.
