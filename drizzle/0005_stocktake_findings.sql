CREATE TABLE "stocktake_findings" (
	"stocktake_id" uuid NOT NULL,
	"class" text NOT NULL,
	"sort_first" text NOT NULL,
	"sort_second" text NOT NULL,
	"item" jsonb NOT NULL,
	CONSTRAINT "stocktake_findings_pkey" PRIMARY KEY("stocktake_id","class","sort_first","sort_second"),
	CONSTRAINT "stocktake_findings_class" CHECK ("stocktake_findings"."class" IN ('missing', 'unknown', 'reportedMissingButSeen', 'retiredButSeen'))
);
--> statement-breakpoint
ALTER TABLE "stocktake_findings" ADD CONSTRAINT "stocktake_findings_stocktake_id_stocktakes_id_fk" FOREIGN KEY ("stocktake_id") REFERENCES "public"."stocktakes"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
-- Closed stocktakes' frozen documents become findings, each item with its class's order key.
INSERT INTO "stocktake_findings" ("stocktake_id", "class", "sort_first", "sort_second", "item")
SELECT st."id", c."class",
  CASE WHEN c."class" = 'unknown' THEN e."item" ->> 'identifierType' ELSE e."item" ->> 'assetTag' END,
  CASE WHEN c."class" = 'unknown' THEN lower(e."item" ->> 'identifier') ELSE e."item" ->> 'id' END,
  e."item"
FROM "stocktakes" st
CROSS JOIN (VALUES ('missing'), ('unknown'), ('reportedMissingButSeen'), ('retiredButSeen')) AS c("class")
CROSS JOIN LATERAL jsonb_array_elements(COALESCE(st."frozen_discrepancies" -> c."class", '[]'::jsonb)) AS e("item")
WHERE st."frozen_discrepancies" IS NOT NULL;--> statement-breakpoint
ALTER TABLE "stocktakes" DROP COLUMN "frozen_discrepancies";