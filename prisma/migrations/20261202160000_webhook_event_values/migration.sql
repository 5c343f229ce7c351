-- A webhook receives the values in event text (crash report state, exit
-- reasons' data) only when an admin says so (server/events/event-values.ts).
ALTER TABLE "Webhook" ADD COLUMN "eventValues" BOOLEAN NOT NULL DEFAULT false;
