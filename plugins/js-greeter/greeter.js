// A flowhost element in JavaScript: greets the person and, when the operator sets `base_url`,
// asks that service how many visits the person has had.
//
// Build: `./build.sh` (or `./dev other-langs` from the repository root) writes
// `target/other-langs/js_greeter.wasm`; copy it into `plugins/` to use it in flows.

import { send } from 'flowhost:element/http@0.1.0';
import { set } from 'flowhost:element/variables@0.1.0';
import { write } from 'flowhost:element/log@0.1.0';
import { setting } from 'flowhost:element/config@0.1.0';

const text = (value) => (value && value.tag === 'text' ? value.val : undefined);

export const element = {
  describe() {
    return {
      id: 'js-greeter',
      version: '0.1.0',
      name: 'Greeter (JavaScript)',
      description: 'Greets the person by first name; counts visits when base_url is set',
      config: [
        {
          name: 'greeting',
          label: 'Greeting',
          description: '',
          kind: 'text',
          required: false,
          defaultValue: JSON.stringify('Hello'),
          secret: false,
        },
      ],
      exits: [
        { id: 'greeted', label: 'Greeted' },
        { id: 'error', label: 'Error' },
      ],
      hosts: ['setting:base_url'],
    };
  },

  execute(invocation) {
    const config = Object.fromEntries(invocation.config);
    const greeting = text(config.greeting) ?? 'Hello';
    if (greeting.trim() === '') {
      throw { tag: 'invalid-config', val: 'greeting is empty; write a greeting or leave it out' };
    }
    const attributes = Object.fromEntries(invocation.person.attributes);
    const name = text(attributes.firstName) ?? invocation.person.id;
    set('greeting', { tag: 'text', val: `${greeting}, ${name}!` });
    write('info', `greeted ${name}`);

    const base = setting('base_url');
    if (base !== undefined) {
      const response = send({
        method: 'GET',
        url: `${base}/visits/${encodeURIComponent(invocation.person.id)}`,
        headers: [['accept', 'text/plain']],
        body: undefined,
        timeoutMs: 1000,
      });
      if (response.status !== 200) {
        throw { tag: 'failed', val: `visits service answered ${response.status}` };
      }
      const visits = Number(new TextDecoder().decode(response.body));
      set('visits', { tag: 'number', val: visits });
    }
    return { exit: 'greeted', data: JSON.stringify({ language: 'javascript' }) };
  },
};
