"use client";
/** The node name of a `/nodes/[node]/…` page, decoded (a malformed escape is kept as typed). */
import { useParams } from "next/navigation";

export function useNodeParam(): string {
  const raw = useParams<{ node: string }>().node;
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}
