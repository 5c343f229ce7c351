-- Rolling upgrades of a group (issue 15): the rollout, its nodes, and the per-node upgrade lock.
CREATE TABLE "Rollout" (
    "id" TEXT NOT NULL,
    "group" TEXT NOT NULL,
    "toVsn" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "phase" TEXT NOT NULL DEFAULT 'unpacking',
    "options" JSONB NOT NULL,
    "haltReason" TEXT,
    "createdBy" TEXT NOT NULL,
    "ownerId" TEXT,
    "ownerExpiresAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Rollout_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "RolloutNode" (
    "rolloutId" TEXT NOT NULL,
    "node" TEXT NOT NULL,
    "position" INTEGER NOT NULL,
    "step" TEXT NOT NULL DEFAULT 'pending',
    "commandId" TEXT,
    "upgradeId" TEXT,
    "fromVsn" TEXT,
    "predicted" JSONB,
    "actual" JSONB,
    "gate" JSONB,
    "error" TEXT,
    "soakStartedAt" TIMESTAMP(3),
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "RolloutNode_pkey" PRIMARY KEY ("rolloutId","node")
);

CREATE TABLE "NodeUpgradeLock" (
    "node" TEXT NOT NULL,
    "holder" TEXT NOT NULL,
    "expiresAt" TIMESTAMP(3) NOT NULL,
    "acquiredAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "NodeUpgradeLock_pkey" PRIMARY KEY ("node")
);

CREATE INDEX "Rollout_status_idx" ON "Rollout"("status");

CREATE INDEX "Rollout_createdAt_idx" ON "Rollout"("createdAt");

ALTER TABLE "RolloutNode" ADD CONSTRAINT "RolloutNode_rolloutId_fkey" FOREIGN KEY ("rolloutId") REFERENCES "Rollout"("id") ON DELETE CASCADE ON UPDATE CASCADE;

