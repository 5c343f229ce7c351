/** A fixed-capacity ring buffer: the newest `capacity` items, oldest first. */
export class Ring<T> {
  private items: T[] = [];
  private start = 0;

  constructor(readonly capacity: number) {}

  push(item: T): void {
    if (this.items.length < this.capacity) this.items.push(item);
    else {
      this.items[this.start] = item;
      this.start = (this.start + 1) % this.capacity;
    }
  }

  toArray(): T[] {
    return this.items.length < this.capacity ? this.items.slice() : [...this.items.slice(this.start), ...this.items.slice(0, this.start)];
  }

  get size(): number {
    return this.items.length;
  }

  last(): T | undefined {
    if (this.items.length === 0) return undefined;
    return this.items.length < this.capacity ? this.items[this.items.length - 1] : this.items[(this.start + this.capacity - 1) % this.capacity];
  }
}
