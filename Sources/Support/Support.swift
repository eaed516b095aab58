// The Support module; its files arrive with their issues.
