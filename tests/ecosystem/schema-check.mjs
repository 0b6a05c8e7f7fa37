// The committed SDL snapshot, loaded by graphql-js: it must be a valid schema.
// Also lists the types, fields and arguments that still lack a description.
import { readFileSync } from 'node:fs';
import { buildSchema, isObjectType, isInputObjectType, isInterfaceType } from 'graphql';

const schema = buildSchema(readFileSync(process.argv[2], 'utf8'));
const missing = [];
for (const type of Object.values(schema.getTypeMap())) {
  if (type.name.startsWith('__')) continue;
  if (!type.description) missing.push(type.name);
  if (isObjectType(type) || isInputObjectType(type) || isInterfaceType(type)) {
    for (const field of Object.values(type.getFields())) {
      if (!field.description) missing.push(`${type.name}.${field.name}`);
      for (const arg of field.args ?? []) {
        if (!arg.description) missing.push(`${type.name}.${field.name}(${arg.name})`);
      }
    }
  }
}
console.log(`schema.graphql is valid for graphql-js; ${missing.length} types, fields or arguments without a description`);
if (process.env.VERBOSE) console.log(missing.join('\n'));
