"use client";
/** Time range for the list pages: presets (from now) or custom local bounds. */
import { fromLocalInput, presetRange, RANGE_PRESETS, toLocalInput, type TimeRange } from "../_lib/when";

export function TimeRangePicker({ value, onChange, testid = "time-range" }: { value: TimeRange; onChange: (r: TimeRange) => void; testid?: string }) {
  return (
    <div className="range" data-testid={testid} data-key={value.key}>
      <fieldset className="seg" aria-label="Time range">
        {RANGE_PRESETS.map((p) => (
          <button key={p.key} type="button" className={value.key === p.key ? "seg-btn active" : "seg-btn"} data-testid={`${testid}-${p.key}`} onClick={() => onChange(presetRange(p.key))}>
            {p.label}
          </button>
        ))}
        <button
          type="button"
          className={value.key === "custom" ? "seg-btn active" : "seg-btn"}
          data-testid={`${testid}-custom`}
          onClick={() => onChange({ key: "custom", from: value.from, to: value.to })}
        >
          Custom
        </button>
      </fieldset>
      {value.key === "custom" ? (
        <span className="range-custom">
          <input
            type="datetime-local"
            step={1}
            className="ctl"
            aria-label="From"
            data-testid={`${testid}-from`}
            value={toLocalInput(value.from)}
            onChange={(e) => onChange({ ...value, from: fromLocalInput(e.target.value) })}
          />
          <span className="muted">to</span>
          <input
            type="datetime-local"
            step={1}
            className="ctl"
            aria-label="To"
            data-testid={`${testid}-to`}
            value={toLocalInput(value.to)}
            onChange={(e) => onChange({ ...value, to: fromLocalInput(e.target.value) })}
          />
        </span>
      ) : null}
    </div>
  );
}
