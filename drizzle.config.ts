import { defineConfig } from 'drizzle-kit'

// Used only by `npm run db:generate` (drizzle-kit generate): it diffs src/db/schema.ts against
// drizzle/meta and writes the next SQL migration. No database connection is needed.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './drizzle',
})
