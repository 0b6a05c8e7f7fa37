// PostGraphile 5 over memberdesk's database, for the side-by-side read figure
// of benches/memberdesk.rs: the amber preset, schema public, no auth, no
// GraphiQL, no watch. The bench sets DATABASE_URL and PORT; the pool has 10
// connections like memberdesk's, so both servers get the same database share.
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";

/** @type {GraphileConfig.Preset} */
export default {
  extends: [PostGraphileAmberPreset],
  // votes.user_id is indexed only where it is not null (votes_user_idx, a
  // partial index, which `WHERE user_id = $1` uses); this plugin ignores
  // partial indexes and would hide User.votesByUserId, the voteCount
  // equivalent. Nothing else in the bench's query depends on it.
  disablePlugins: ["PgIndexBehaviorsPlugin"],
  pgServices: [
    makePgService({
      connectionString: process.env.DATABASE_URL,
      schemas: ["public"],
      poolConfig: { max: 10 },
    }),
  ],
  grafserv: {
    host: "127.0.0.1",
    port: Number(process.env.PORT),
    graphiql: false,
    watch: false,
  },
  grafast: { explain: false },
};
