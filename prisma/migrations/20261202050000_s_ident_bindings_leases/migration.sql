-- Node identity: a node name is bound to one agent token (issue 10, item 1).
ALTER TABLE "Node" ADD COLUMN "boundTokenId" TEXT;
-- Increases on every takeover of the name; events and acks count only from the current epoch.
ALTER TABLE "Node" ADD COLUMN "epoch" INTEGER NOT NULL DEFAULT 0;
-- The lease: instanceId holds the node until leaseExpiresAt, renewed by that instance's heartbeat.
ALTER TABLE "Node" ADD COLUMN "leaseExpiresAt" TIMESTAMP(3);

-- Fleet tokens claim only names matching their pattern (and hello's group, when given).
ALTER TABLE "AgentToken" ADD COLUMN "fleetPattern" TEXT;
ALTER TABLE "AgentToken" ADD COLUMN "fleetGroup" TEXT;
-- Existing bare fleet tokens become bind-on-first-use.
UPDATE "AgentToken" SET "fleet" = false WHERE "fleet" = true;

-- Server instances and their heartbeat: a node whose instance stopped beating is released.
CREATE TABLE "Instance" (
    "id" TEXT NOT NULL,
    "startedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "heartbeatAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "Instance_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "Node_boundTokenId_idx" ON "Node"("boundTokenId");
