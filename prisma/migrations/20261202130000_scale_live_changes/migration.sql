-- Several instances on one PostgreSQL (issue 16).
-- Where other instances reach this one for live reads of the nodes it holds.
ALTER TABLE "Instance" ADD COLUMN "internalUrl" TEXT;

-- Live changes fanned out between instances: the payload stays here, NOTIFY
-- carries only the publishing instance and its highest id. Pruned after a minute.
CREATE TABLE "LiveChange" (
    "id" BIGSERIAL NOT NULL,
    "instanceId" TEXT NOT NULL,
    "topic" TEXT NOT NULL,
    "payload" JSONB NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "LiveChange_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "LiveChange_createdAt_idx" ON "LiveChange"("createdAt");
