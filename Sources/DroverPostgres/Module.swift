// Module DroverPostgres
// Owns: the PostgreSQL state backend: advisory pool locks held on a live session, journal rows written in transactions, its schema migrations.
// Must not: decide anything; it stores what the engine gives it and answers what it asks, within deadlines.
