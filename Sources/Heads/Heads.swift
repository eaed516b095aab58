// The Heads module; its files arrive with their issues.
