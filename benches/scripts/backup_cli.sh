# Sourced by the backup bench scripts: sets BIN to the release `backup_cli` (built here unless BIN names an
# already built one) and DATABASE_URL to the bench database. Needs ROOT, PGUSER, PGHOST, PGPORT and DB.
if [ -z "${BIN:-}" ]; then # BIN=path measures an already built backup_cli instead
  echo "building backup_cli (release) ..." >&2
  BIN="$(cd "$ROOT" && cargo bench -p resee-ops-benches --bench backup_cli --no-run --message-format=json 2>/dev/null \
    | sed -n 's/.*"executable":"\([^"]*backup_cli[^"]*\)".*/\1/p' | tail -1)"
fi
[ -x "$BIN" ] || { echo "could not build backup_cli" >&2; exit 1; }
export DATABASE_URL="postgres://${PGUSER}@${PGHOST}:${PGPORT}/${DB}"
