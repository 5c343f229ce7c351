-- AlterTable
ALTER TABLE "UpgradeCommand" ADD COLUMN     "intentId" BIGINT;

